"""The human summary of a run: report.md and a forecast-vs-actual plot of the test part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from splineforecast import artifacts  # noqa: E402
from splineforecast.evaluation import METRICS  # noqa: E402

PLOT_NAME = "forecast.png"


def plot_forecast(
    path: Path,
    timestamps: np.ndarray,
    actual: np.ndarray,
    observed: np.ndarray,
    origins: np.ndarray,
    forecast: np.ndarray,
    title: str,
) -> None:
    """Observed test values beside the 1-step and last-step forecasts of every window."""
    horizon = forecast.shape[1]
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    rows = np.arange(origins[0], origins[-1] + horizon)
    seen = observed[rows]
    ax.plot(timestamps[rows][seen], actual[rows][seen], ".", ms=3, color="black", label="observed")
    ax.plot(timestamps[origins], forecast[:, 0], lw=1, label="forecast, 1 step ahead")
    if horizon > 1:
        ax.plot(timestamps[origins + horizon - 1], forecast[:, -1], lw=1, label=f"forecast, {horizon} steps ahead")
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def _table(result: dict[str, Any]) -> str:
    rows = {"model": result["metrics"], **result["baselines"]}
    head = "| | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
    body = "".join(f"| {n} | " + " | ".join(f"{r[m]:.4g}" for m in METRICS) + " |\n" for n, r in rows.items())
    return head + body


def write_report(path: Path, run_id: str, summary: dict[str, Any], result: dict[str, Any]) -> None:
    """report.md: data, config, metrics beside the baselines, per-step MAE, the plot."""
    steps = result["per_horizon"]
    step_rows = "".join(
        f"| {k + 1} | " + " | ".join(f"{steps[n]['mae'][k]:.4g}" for n in steps) + " |\n"
        for k in range(len(steps["model"]["mae"]))
    )
    text = (
        f"# Run `{run_id}`\n\n"
        + "".join(f"- **{k}**: {v}\n" for k, v in summary.items())
        + f"\n## Test metrics (original units, {result['n_points']} observed points)\n\n"
        + _table(result)
        + "\n## MAE per horizon step\n\n| step | "
        + " | ".join(steps)
        + " |\n|---|"
        + "---|" * len(steps)
        + "\n"
        + step_rows
        + f"\n![forecast vs actual]({PLOT_NAME})\n"
    )
    artifacts.write_bytes(path, text.encode())

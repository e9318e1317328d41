"""The human summary of a run, formatted from its EvalResult: report.md and a forecast plot (PNG)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from splineforecast.evaluation import METRICS, TestForecast  # noqa: E402
from splineforecast.records import EvalResult  # noqa: E402
from splineforecast.uncertainty import intervals  # noqa: E402


def plot_forecast(tf: TestForecast, timestamps: np.ndarray, lookback: int, title: str) -> bytes:
    """PNG: observed test values beside the 1-step and last-step forecasts of every window; with quantiles,
    a fan of the 1-step intervals (widest palest) under them."""
    horizon = tf.forecast.shape[1]
    origins = tf.starts + lookback  # the first forecast row of each window
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    for k, (pct, lower, upper) in enumerate(fan_bands(tf)):
        alpha = 0.15 + 0.5 * k / max(1, len(intervals(tf.levels)))
        ax.fill_between(
            timestamps[origins], lower, upper, color="tab:blue", alpha=alpha, lw=0, label=f"{pct}% interval"
        )
    rows = np.arange(origins[0], origins[-1] + horizon)
    seen = tf.observed[rows]
    ax.plot(timestamps[rows][seen], tf.actual[rows][seen], ".", ms=3, color="black", label="observed")
    ax.plot(timestamps[origins], tf.forecast[:, 0], lw=1, label="forecast, 1 step ahead")
    if horizon > 1:
        ax.plot(timestamps[origins + horizon - 1], tf.forecast[:, -1], lw=1, label=f"forecast, {horizon} steps ahead")
    return _png(fig, ax, title)


def fan_bands(tf: TestForecast, step: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(nominal percent, lower, upper) of each interval at horizon ``step`` over the test windows, widest first."""
    if tf.quantiles is None:
        return []
    return [(pct, tf.quantiles[:, step, lo], tf.quantiles[:, step, hi]) for lo, hi, pct in intervals(tf.levels)]


def _png(fig: Any, ax: Any, title: str) -> bytes:
    """Title and legend ``ax``; ``fig`` as PNG bytes (the figure is closed)."""
    ax.set_title(title)
    ax.legend(loc="best")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return png.getvalue()


def plot_distribution(values: np.ndarray, reference: float, title: str) -> bytes:
    """PNG: a histogram of per-series MASE, with a line at ``reference`` (MASE 1: the seasonal-naive scale)."""
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    finite = values[np.isfinite(values)]
    ax.hist(finite, bins=min(50, max(5, len(finite) // 4)), color="tab:blue")
    ax.axvline(reference, color="black", lw=1, ls="--", label=f"MASE {reference:g}")
    ax.set_xlabel("MASE per series")
    ax.set_ylabel("series")
    return _png(fig, ax, title)


def render_panel_section(result: EvalResult, picks: dict[str, tuple[str, float, str]], mase_plot: str) -> str:
    """The panel part of report.md: mean sMAPE/MASE beside the baselines, the MASE distribution, and the
    forecast plots of the series ``picks`` names (``{label: (series id, MASE, plot file)}``)."""
    panel = result.panel
    if panel is None:
        return ""
    head = "| | mean sMAPE | mean MASE |\n|---|---|---|\n"
    rows = "".join(f"| {n} | {m['smape']:.4g} | {m['mase']:.4g} |\n" for n, m in panel.mean.items())
    plots = "".join(
        f"\n### {label}: series `{sid}` (MASE {mase:.3g})\n\n![{label}]({png})\n"
        for label, (sid, mase, png) in picks.items()
    )
    return (
        f"\n## Per series ({panel.n_series} series; each series in per_series.csv)\n\n"
        + head
        + rows
        + f"\n![MASE per series]({mase_plot})\n"
        + plots
    )


def _table(result: EvalResult) -> str:
    rows = {"model": result.metrics, **result.baselines}
    head = "| | " + " | ".join(METRICS) + " |\n|---|" + "---|" * len(METRICS) + "\n"
    body = "".join(f"| {n} | " + " | ".join(f"{r[m]:.4g}" for m in METRICS) + " |\n" for n, r in rows.items())
    return head + body


def render_uncertainty(result: EvalResult) -> str:
    """The interval scores of report.md: coverage and width of each interval, MSIS and CRPS (no quantiles: "")."""
    if result.uncertainty is None:
        return ""
    scores = result.uncertainty["scores"]
    keys = [k for k in scores["model"] if k.startswith(("coverage_", "width_", "msis_"))] + ["crps"]
    head = "| | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys) + "\n"
    body = "".join(f"| {n} | " + " | ".join(f"{r[k]:.4g}" for k in keys) + " |\n" for n, r in scores.items())
    levels = ", ".join(f"{q:g}" for q in result.uncertainty["levels"])
    calibration = result.uncertainty.get("calibration", "none")
    return f"\n## Intervals (levels {levels}; calibration {calibration})\n\n" + head + body


def render_report(result: EvalResult, summary: dict[str, str], plot_name: str) -> str:
    """report.md: data, config, metrics beside the baselines, per-step MAE, the plot ``plot_name``."""
    steps = result.scores.per_horizon
    step_rows = "".join(
        f"| {k + 1} | " + " | ".join(f"{steps[n]['mae'][k]:.4g}" for n in steps) + " |\n"
        for k in range(len(steps["model"]["mae"]))
    )
    return (
        f"# Run `{result.run_id}`\n\n"
        + "".join(f"- **{k}**: {v}\n" for k, v in summary.items())
        + f"\n## Test metrics (original units, {result.scores.n_points} observed points)\n\n"
        + _table(result)
        + render_uncertainty(result)
        + "\n## MAE per horizon step\n\n| step | "
        + " | ".join(steps)
        + " |\n|---|"
        + "---|" * len(steps)
        + "\n"
        + step_rows
        + f"\n![forecast vs actual]({plot_name})\n"
    )


def plot_folds(values: dict[str, list[float]], metric: str, title: str) -> bytes:
    """PNG: ``metric`` of each fold of a backtest (x: fold, earliest origin first), one line per forecaster."""
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for name, per_fold in values.items():
        ax.plot(np.arange(len(per_fold)), per_fold, marker="o", lw=1, label=name)
    ax.set_xticks(np.arange(len(next(iter(values.values()), []))))
    ax.set_xlabel("fold (origin)")
    ax.set_ylabel(metric)
    return _png(fig, ax, title)

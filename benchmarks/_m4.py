"""M4 pieces of ``benchmarks/m4.py``: the wide files, the M4 scores and the M4 benchmarks Naive2 and seasonal naive.

Everything follows the M4 competition's own R code (Mcompetitions/M4-methods, ``Benchmarks and Evaluation.R``;
Makridakis, Spiliotis & Assimakopoulos, IJF 36(1), 2020):

* sMAPE = mean over the horizon of ``200 |y - f| / (|y| + |f|)``;
* MASE = MAE over the horizon / the in-sample MAE of the seasonal naive forecast with lag ``m``;
* OWA = ``(sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2) / 2`` with the means over all series;
* Naive2: where the 90% autocorrelation test at lag ``m`` finds seasonality (``SeasonalityTest``; series shorter
  than ``3 m`` count as not seasonal), a classical multiplicative decomposition (R's ``decompose``: centred moving
  average of order ``m``, seasonal indices averaged per position and normalised to mean 1); the seasonally
  adjusted series is forecast naively and reseasonalised. Otherwise plain naive.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# frequency -> (horizon, m for MASE and Naive2): M4's settings; weekly is scored with m = 1
FREQUENCIES = {"hourly": (48, 24), "weekly": (13, 1)}
# published M4 Hourly rows (Makridakis et al. 2020; `Evaluation and Ranks.xlsx` of the M4-methods repository)
PUBLISHED_HOURLY = {
    "Doornik et al. (best on hourly)": (8.913, 0.801, 0.410),
    "Smyl, ES-RNN (M4 winner)": (9.328, 0.893, 0.440),
    "seasonal naive": (13.912, 1.193, 0.627),
    "Naive2": (18.383, 2.395, 1.000),
    "MLP (M4 benchmark)": (13.842, 2.607, 0.921),
    "RNN (M4 benchmark)": (14.698, 3.048, 1.036),
}


@dataclass(frozen=True)
class Panel:
    """Series of an M4 wide file: ids in file order, each series' values (NaN padding removed)."""

    ids: list[str]
    values: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)


def read_wide(path: str | os.PathLike[str]) -> Panel:
    """An M4 wide file: the first column the series id, then the values in time order padded with empty cells.

    Raises:
        ValueError: a duplicate id, a gap inside a series, or a series without values.
    """
    frame = pd.read_csv(path, dtype={0: str})
    ids = frame.iloc[:, 0].astype(str).tolist()
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"{path}: duplicate series ids {dup[:5]}")
    matrix = frame.iloc[:, 1:].to_numpy(dtype=np.float64)
    values = []
    for sid, row in zip(ids, matrix, strict=True):
        seen = np.flatnonzero(~np.isnan(row))
        if seen.size == 0 or seen[-1] + 1 != seen.size:
            raise ValueError(f"{path}: series {sid!r} is empty or has an empty cell before its last value")
        values.append(row[: seen.size])
    return Panel(ids, values)


def align(train: Panel, test: Panel, horizon: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Each test series' history from ``train`` (test order) and the test values as an (n, horizon) array.

    Raises:
        ValueError: a test id missing from ``train``, or a test row without ``horizon`` values.
    """
    index = {sid: i for i, sid in enumerate(train.ids)}
    missing = [sid for sid in test.ids if sid not in index]
    if missing:
        raise ValueError(f"{len(missing)} test series have no training series, e.g. {missing[:5]}")
    short = [sid for sid, v in zip(test.ids, test.values, strict=True) if len(v) < horizon]
    if short:
        raise ValueError(f"{len(short)} test series hold fewer than {horizon} values, e.g. {short[:5]}")
    history = [train.values[index[sid]] for sid in test.ids]
    return history, np.stack([v[:horizon] for v in test.values])


def write_wide(path: str | os.PathLike[str], ids: Sequence[str], forecasts: np.ndarray) -> None:
    """Forecasts in M4's wide layout: ``id,F1..Fh``, one row per series."""
    frame = pd.DataFrame(forecasts, columns=[f"F{j + 1}" for j in range(forecasts.shape[1])])
    frame.insert(0, "id", list(ids))
    frame.to_csv(path, index=False)


def smape(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Per-series sMAPE (percent) of (n, h) forecasts: M4's ``smape_cal`` averaged over the horizon."""
    return np.mean(200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f)), axis=1)


def mase_scale(insample: np.ndarray, m: int) -> float:
    """The in-sample MAE of the seasonal naive forecast with lag ``m`` (M4's ``masep``).

    A history of ``m`` points or fewer has no lag-``m`` pair (M4 has none such; its code would give NaN): lag 1.
    """
    m = m if len(insample) > m else 1
    return float(np.mean(np.abs(insample[m:] - insample[:-m])))


def mase(history: Sequence[np.ndarray], y: np.ndarray, f: np.ndarray, m: int) -> np.ndarray:
    """Per-series MASE of (n, h) forecasts, each over its own history's seasonal-naive MAE."""
    scales = np.array([mase_scale(h, m) for h in history])
    return np.mean(np.abs(y - f), axis=1) / scales


def scores(history: Sequence[np.ndarray], y: np.ndarray, f: np.ndarray, m: int) -> dict[str, float]:
    """Mean sMAPE and mean MASE over the series."""
    return {"smape": float(np.mean(smape(y, f))), "mase": float(np.mean(mase(history, y, f, m)))}


def owa(score: dict[str, float], naive2: dict[str, float]) -> float:
    """M4's overall weighted average relative to Naive2, from the dataset-level means."""
    return 0.5 * (score["smape"] / naive2["smape"] + score["mase"] / naive2["mase"])


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelations at lags 1..max_lag, as R's ``acf`` (mean removed, denominator n at every lag)."""
    z = x - x.mean()
    denom = float(np.dot(z, z))
    return np.array([np.dot(z[k:], z[:-k]) / denom for k in range(1, max_lag + 1)])


def is_seasonal(x: np.ndarray, m: int) -> bool:
    """M4's ``SeasonalityTest``: |acf_m| > 1.645 sqrt((1 + 2 sum_{k<m} acf_k^2) / n); False if n < 3m or m <= 1."""
    if m <= 1 or len(x) < 3 * m or np.ptp(x) == 0:
        return False
    r = acf(x, m)
    limit = 1.645 * np.sqrt((1.0 + 2.0 * np.sum(r[:-1] ** 2)) / len(x))
    return bool(abs(r[-1]) > limit)


def seasonal_indices(x: np.ndarray, m: int) -> np.ndarray:
    """Multiplicative seasonal indices of R's ``decompose`` (mean 1), by position ``t % m`` from the series' start."""
    weights = np.full(m + 1, 1.0 / m) if m % 2 == 0 else np.full(m, 1.0 / m)
    if m % 2 == 0:  # the centred 2 x m moving average
        weights[0] = weights[-1] = 0.5 / m
    half = len(weights) // 2
    trend = np.full(len(x), np.nan)
    trend[half : len(x) - half] = np.convolve(x, weights, mode="valid")
    ratio = x / trend
    figure = np.array([np.nanmean(ratio[i::m]) for i in range(m)])
    return figure / figure.mean()


def naive2(x: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """M4's Naive2 forecast of one series (see the module docstring)."""
    if not is_seasonal(x, m):
        return np.full(horizon, x[-1])
    figure = seasonal_indices(x, m)
    position = np.arange(len(x), len(x) + horizon) % m
    return x[-1] / figure[(len(x) - 1) % m] * figure[position]


def seasonal_naive(x: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """The last season repeated (M4's ``naive_seasonal``); naive when ``m`` is 1."""
    season = x[-m:] if m > 1 else x[-1:]
    return np.resize(season, horizon)


def baselines(history: Sequence[np.ndarray], horizon: int, m: int) -> dict[str, np.ndarray]:
    """The (n, horizon) forecasts of naive, seasonal naive and Naive2 for every series."""
    return {
        "naive": np.stack([np.full(horizon, h[-1]) for h in history]),
        "seasonal_naive": np.stack([seasonal_naive(h, horizon, m) for h in history]),
        "naive2": np.stack([naive2(h, horizon, m) for h in history]),
    }


def printed(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The table rows: measured (with ± std over seeds where there are several) then published."""
    lines = []
    for r in result["rows"]:
        line = {"method": r["method"], "source": "measured"}
        for key in ("smape", "mase", "owa"):
            line[key] = f"{r[key]:.3f}" + (f" ±{r[key + '_std']:.3f}" if r.get("seeds", 1) > 1 else "")
        lines.append(line)
    for name, r in result["peers"].items():
        scores = {k: f"{r[k]:.3f}" for k in ("smape", "mase", "owa")}
        lines.append({"method": name, "source": "peer", **scores, "seconds": f"{r['seconds']:.0f}"})
    lines += [
        {**{k: f"{v:.3f}" for k, v in r.items() if k != "method"}, "method": r["method"], "source": "published"}
        for r in result["published"]
    ]
    return lines

"""Peers of ``benchmarks/m4.py``: published libraries' models on the same M4 split, scored by the same ``_m4``.

Each peer sees each series' history exactly as ``_m4.align`` gives it (test-file order, integer time steps
``1..n``) and returns an (n_series, horizon) forecast in that order; its wall seconds are fit + forecast.

* ``statsforecast`` (Nixtla): ``AutoETS`` and ``MSTL`` with the season length of ``SEASON`` (statsforecast's
  ``season_length`` is "the number of observations per unit of time": 24 for hourly, 52 weeks a year for
  weekly; AutoETS drops seasonal candidates when it exceeds 24, as R's ``ets`` does), MSTL with its default
  trend forecaster ``AutoETS(model="ZZN")``; and ``SeasonalNaive`` with M4's ``m``, which must reproduce
  ``_m4.seasonal_naive`` (a check of the data path: same series, same order, same horizon).
* ``neuralforecast`` (Nixtla): ``LSTM`` with its defaults and ``input_size = 2 * horizon`` (96 for hourly),
  one global model over all series; the trainer is told only to stay quiet and to write no logs or
  checkpoints (``TRAINER``), which changes nothing in the fit.

The packages are the optional ``bench`` extra (``pip install -e ".[bench]"``, best in a separate virtualenv:
neuralforecast brings its own pytorch-lightning and ray); :func:`missing` names the ones not importable.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import _m4
import numpy as np
import pandas as pd

PEERS = ("statsforecast", "neuralforecast")
# season_length for AutoETS and MSTL per M4 frequency
SEASON = {"hourly": 24, "weekly": 52}
TRAINER = {"enable_progress_bar": False, "enable_model_summary": False, "logger": False, "enable_checkpointing": False}
STATSFORECAST_JOBS = 1


@dataclass
class PeerRun:
    """One peer's forecast (n_series, horizon), its fit + forecast wall seconds and its exact settings."""

    name: str
    forecast: np.ndarray
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)


def missing(names: Sequence[str]) -> list[str]:
    """The peer packages of ``names`` that cannot be imported here."""
    return [n for n in names if importlib.util.find_spec(n) is None]


def long_frame(ids: Sequence[str], history: Sequence[np.ndarray]) -> pd.DataFrame:
    """The series in Nixtla's long layout: ``unique_id``, ``ds`` (1..n per series), ``y``."""
    return pd.DataFrame(
        {
            "unique_id": np.repeat(np.asarray(ids, dtype=object), [len(h) for h in history]),
            "ds": np.concatenate([np.arange(1, len(h) + 1) for h in history]),
            "y": np.concatenate(history),
        }
    )


def wide(
    frame: pd.DataFrame, column: str, ids: Sequence[str], history: Sequence[np.ndarray], horizon: int
) -> np.ndarray:
    """A long forecast frame as (n_series, horizon) in ``ids`` order; each series' steps must follow its history.

    Raises:
        ValueError: a series missing, or its forecast steps not ``n+1..n+horizon``.
    """
    frame = frame.reset_index().sort_values(["unique_id", "ds"])
    groups = {str(k): g for k, g in frame.groupby("unique_id", sort=False)}
    out = np.empty((len(ids), horizon))
    for i, (sid, h) in enumerate(zip(ids, history, strict=True)):
        g = groups.get(str(sid))
        if g is None or not np.array_equal(g["ds"].to_numpy(), np.arange(len(h) + 1, len(h) + horizon + 1)):
            raise ValueError(f"{column}: series {sid!r} has no forecast for steps {len(h) + 1}..{len(h) + horizon}")
        out[i] = g[column].to_numpy(dtype=np.float64)
    return out


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def signature_settings(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """Every constructor argument of ``cls`` as used: its default unless ``given``, unserialisable ones by repr."""
    params = inspect.signature(cls).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return {k: _jsonable(v) for k, v in {**defaults, **given}.items()}


def timed(name: str, run: Callable[[], np.ndarray], settings: dict[str, Any]) -> PeerRun:
    """Run ``run`` (fit + forecast), timing it; say so when done."""
    t0 = time.perf_counter()
    forecast = run()
    seconds = time.perf_counter() - t0
    print(f"  peer {name}: fit + forecast {seconds:.0f} s", flush=True)
    return PeerRun(name, forecast, seconds, settings)


def statsforecast_peers(
    ids: Sequence[str],
    history: Sequence[np.ndarray],
    horizon: int,
    m: int,
    freq: str,
    only: Sequence[str] | None = None,
) -> list[PeerRun]:
    """statsforecast AutoETS, MSTL and SeasonalNaive (or the ``only`` named), each fitted and timed on its own."""
    import statsforecast
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS, SeasonalNaive

    df = long_frame(ids, history)
    season = SEASON[freq]
    models = {
        "statsforecast AutoETS": (AutoETS, {"season_length": season}),
        "statsforecast MSTL": (MSTL, {"season_length": season}),
        "statsforecast SeasonalNaive": (SeasonalNaive, {"season_length": m}),
    }
    runs = []
    for name, (cls, given) in models.items():
        if only is not None and name not in only:
            continue
        model = cls(**given)
        settings = {
            "version": statsforecast.__version__,
            "model": repr(model),
            "args": signature_settings(cls, given),
            "n_jobs": STATSFORECAST_JOBS,
        }

        def run(model: Any = model) -> np.ndarray:
            sf = StatsForecast(models=[model], freq=1, n_jobs=STATSFORECAST_JOBS)
            return wide(sf.forecast(df=df, h=horizon), repr(model), ids, history, horizon)

        runs.append(timed(name, run, settings))
    return runs


def neuralforecast_peers(
    ids: Sequence[str], history: Sequence[np.ndarray], horizon: int, m: int, freq: str
) -> list[PeerRun]:
    """neuralforecast LSTM with its defaults, ``input_size = 2 * horizon``: one global fit, then the forecast."""
    import neuralforecast
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    df = long_frame(ids, history)
    given = {"h": horizon, "input_size": 2 * horizon}
    settings = {
        "version": neuralforecast.__version__,
        "model": "LSTM",
        "args": signature_settings(LSTM, given),
        "trainer_kwargs": TRAINER,
    }

    def run() -> np.ndarray:
        nf = NeuralForecast(models=[LSTM(**given, **TRAINER)], freq=1)
        nf.fit(df=df)
        return wide(nf.predict(), "LSTM", ids, history, horizon)

    return [timed("neuralforecast LSTM", run, settings)]


RUNNERS = {"statsforecast": statsforecast_peers, "neuralforecast": neuralforecast_peers}


def run_peers(
    names: Sequence[str], ids: Sequence[str], history: Sequence[np.ndarray], horizon: int, m: int, freq: str
) -> list[PeerRun]:
    """Every model of the named peer packages, in the order named."""
    return [r for name in names for r in RUNNERS[name](ids, history, horizon, m, freq)]


def scored(run: PeerRun, history: Sequence[np.ndarray], y: np.ndarray, m: int, ref: dict[str, float]) -> dict:
    """A peer's entry of ``m4.json``: sMAPE, MASE and OWA by ``_m4``, its seconds and settings."""
    s = _m4.scores(history, y, run.forecast, m)
    return {**s, "owa": _m4.owa(s, ref), "seconds": run.seconds, "settings": run.settings}


def seasonal_naive_gap(runs: Sequence[PeerRun], ours: np.ndarray) -> float | None:
    """The largest |statsforecast SeasonalNaive - our seasonal naive| (None without that peer)."""
    for r in runs:
        if r.name == "statsforecast SeasonalNaive":
            return float(np.max(np.abs(r.forecast - ours)))
    return None

"""M4: one global LSTM/GRU over every series of an M4 wide file pair, scored by the M4 definitions beside Naive2.

    python benchmarks/m4.py --train Hourly-train.csv --test Hourly-test.csv --freq hourly --out DIR
        [--seeds N] [--model lstm|gru|none] [--lookback L] [--quick] [--peers statsforecast,neuralforecast]

The files are read only through the arguments, in M4's wide layout (``V1`` the id, then the values padded
with empty cells). One network is trained on windows from all series (``_panel``: per-series scaling fitted
on each series' train part, val = each series' last ``horizon`` points, no window crosses a series), built
from the package's pieces as ``accuracy.py`` builds its models (``ForecastModule`` with the package defaults
``norm=last`` and the skip path, the Trainer of ``splineforecast.training.build_trainer``, the best-val
checkpoint). Scores, Naive2 and seasonal naive follow the M4 competition's code (``_m4``). Writes
``DIR/forecasts.csv`` (the model's forecast, the mean over seeds; Naive2's with ``--model none``),
``DIR/forecasts_<baseline>.csv`` and ``DIR/m4.json``. ``--peers`` adds the models of ``_peers`` (statsforecast,
neuralforecast: the optional ``bench`` extra) on the same split, scored the same way (``DIR/forecasts_peer_*.csv``).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import _common as common
import _m4
import _panel
import _peers
import numpy as np

from splineforecast.models.registry import MODEL_NAMES

DEFAULT_LOOKBACK = {"hourly": 168, "weekly": 52}
BASELINES = ("naive2", "seasonal_naive", "naive")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="M4 wide training file (id, then values)")
    p.add_argument("--test", required=True, help="M4 wide test file (id, then the horizon's values)")
    p.add_argument("--freq", required=True, choices=tuple(_m4.FREQUENCIES), help="sets horizon and m")
    p.add_argument("--out", required=True, help="folder for forecasts*.csv and m4.json")
    p.add_argument("--model", choices=(*MODEL_NAMES, "none"), default="lstm", help="none: baselines only")
    p.add_argument("--seeds", type=int, default=1, help="models trained, each with its own seed (default 1)")
    p.add_argument("--lookback", type=int, default=None, help="default: 168 hourly, 52 weekly")
    p.add_argument("--horizon", type=int, default=None, help="default: M4's, 48 hourly, 13 weekly")
    p.add_argument("--epochs", type=int, default=30, help="at most; early stopping on the val windows")
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--windows-per-epoch", type=int, default=16384, help="train windows drawn per epoch")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 epoch of 4 batches, 1 seed")
    p.add_argument("--peers", default="", help=f"comma-separated, of {','.join(_peers.PEERS)} (default none)")
    args = p.parse_args(argv)
    args.peers = [n for n in args.peers.split(",") if n]
    unknown = sorted(set(args.peers) - set(_peers.PEERS))
    if unknown:
        p.error(f"--peers: unknown {unknown}; choose from {','.join(_peers.PEERS)}")
    absent = _peers.missing(args.peers)
    if absent:
        p.error(
            f"--peers {','.join(absent)}: not installed; they are the optional `bench` extra: "
            'pip install -e ".[bench]" (best in a separate virtualenv, e.g. .venv-bench)'
        )
    horizon, args.m = _m4.FREQUENCIES[args.freq]
    args.horizon = args.horizon or horizon
    args.lookback = args.lookback or DEFAULT_LOOKBACK[args.freq]
    if min(args.seeds, args.lookback, args.horizon) < 1:
        p.error("--seeds, --lookback and --horizon must be >= 1")
    if args.quick:
        args.epochs, args.seeds, args.windows_per_epoch = 1, 1, 4 * args.batch_size
    return args


def trainer_config(args: argparse.Namespace) -> Any:
    """Every seed's Trainer: ``windows_per_epoch`` random train windows per epoch, all val windows."""
    from splineforecast.config import TrainerConfig

    return TrainerConfig(
        max_epochs=args.epochs,
        patience=args.patience,
        enable_progress_bar=False,
        limit_train_batches=max(1, args.windows_per_epoch // args.batch_size),
    )


def train_seed(panel: _panel.PanelWindows, args: argparse.Namespace, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Train one global model; its forecast of the windowed series (original units) and training facts."""
    from accuracy import fit_best

    from splineforecast.config import ModelConfig
    from splineforecast.models.spec import DataSpec

    spec = DataSpec(1, args.lookback, args.horizon, (0,))
    data = _panel.PanelData(panel, spec, args.batch_size, seed)
    model_cfg = ModelConfig(name=args.model, hidden_size=args.hidden, num_layers=args.layers, lr=args.lr)
    module = common.seeded_module(dataclasses.asdict(model_cfg), spec, seed)
    t0 = time.perf_counter()
    epochs, fit_seconds = fit_best(module, data, trainer_config(args))
    f = _panel.forecast(module.net, panel, args.lookback)
    seconds = time.perf_counter() - t0
    facts = {"epochs": epochs, "fit_seconds": fit_seconds, "fit_forecast_seconds": seconds}
    return f, facts | {"windows": {k: len(v) for k, v in data.datasets.items()}}


def model_forecast(
    history: list[np.ndarray], naive2: np.ndarray, args: argparse.Namespace, seed: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Every series' forecast from one seed's model; series the panel cannot window take Naive2's."""
    panel = _panel.build_panel(history, args.lookback, args.horizon)
    out = naive2.copy()
    f, facts = train_seed(panel, args, seed)
    out[panel.windowed] = f
    return out, facts | {"seed": seed}


def series_counts(history: list[np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """How each series is forecast by the model: windowed whole, padded, or Naive2 (no train part)."""
    panel = _panel.build_panel(history, args.lookback, args.horizon)
    return {
        "n_series": len(history),
        "n_windowed": int(panel.windowed.size),
        "n_padded": int(panel.padded.size),
        "n_fallback_naive2": int(panel.fallback.size),
        "min_length": int(min(len(h) for h in history)),
        "max_length": int(max(len(h) for h in history)),
    }


def scored(method: str, history: list[np.ndarray], y: np.ndarray, f: np.ndarray, args: Any, ref: Any) -> dict:
    """One measured row: the method's mean sMAPE, mean MASE and OWA against Naive2's scores ``ref``."""
    s = _m4.scores(history, y, f, args.m)
    return {"method": method, **s, "owa": _m4.owa(s, ref) if ref else 1.0}


def seed_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over the seeds' rows."""
    out: dict[str, Any] = {"method": f"{rows[0]['method']} (mean of {len(rows)} seeds)", "seeds": len(rows)}
    for key in ("smape", "mase", "owa"):
        out[key], out[f"{key}_std"] = common.mean_spread([r[key] for r in rows])
    return out


def run_models(
    history: list[np.ndarray], y: np.ndarray, fc: dict[str, np.ndarray], ref: dict, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train every seed; the per-seed rows and the summary rows (seed mean, and the seed ensemble)."""
    seeds, forecasts = [], []
    for seed in range(args.seeds):
        f, facts = model_forecast(history, fc["naive2"], args, seed)
        seeds.append(scored(args.model, history, y, f, args, ref) | facts)
        forecasts.append(f)
        r = seeds[-1]
        print(
            f"  {args.model} seed={seed}: sMAPE={r['smape']:.3f} MASE={r['mase']:.3f} OWA={r['owa']:.3f} "
            f"({r['epochs']} epochs, fit+forecast {r['fit_forecast_seconds']:.0f} s)",
            flush=True,
        )
    fc["model"] = np.mean(forecasts, axis=0)
    rows = [seed_summary(seeds)]
    if args.seeds > 1:
        rows.append(scored(f"{args.model} (ensemble of {args.seeds} seeds)", history, y, fc["model"], args, ref))
    return seeds, rows


def run_peers(
    ids: list[str], history: list[np.ndarray], y: np.ndarray, fc: dict[str, np.ndarray], ref: dict, args: Any
) -> dict[str, Any]:
    """The ``--peers`` models on the same split: their ``m4.json`` entries; their forecasts join ``fc``.

    Raises:
        RuntimeError: statsforecast's SeasonalNaive differs from ours (the peers' data path is wrong).
    """
    runs = _peers.run_peers(args.peers, ids, history, args.horizon, args.m, args.freq)
    gap = _peers.seasonal_naive_gap(runs, fc["seasonal_naive"])
    if gap is not None and gap > 1e-6:
        raise RuntimeError(f"statsforecast SeasonalNaive differs from our seasonal naive by up to {gap:g}")
    peers = {}
    for r in runs:
        fc[f"peer_{r.name.replace(' ', '_')}"] = r.forecast
        peers[r.name] = _peers.scored(r, history, y, args.m, ref)
        if r.name == "statsforecast SeasonalNaive":
            peers[r.name]["max_abs_diff_vs_seasonal_naive"] = gap
    return peers


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Read, forecast, score and write the forecasts; the JSON fields."""
    test = _m4.read_wide(args.test)
    history, y = _m4.align(_m4.read_wide(args.train), test, args.horizon)
    ids = test.ids
    fc = _m4.baselines(history, args.horizon, args.m)
    ref = _m4.scores(history, y, fc["naive2"], args.m)
    rows = [scored(name, history, y, fc[name], args, ref) for name in BASELINES]
    seeds: list[dict[str, Any]] = []
    if args.model != "none":
        seeds, model_rows = run_models(history, y, fc, ref, args)
        rows = model_rows + rows
    peers = run_peers(ids, history, y, fc, ref, args) if args.peers else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _m4.write_wide(out / "forecasts.csv", ids, fc["model" if args.model != "none" else "naive2"])
    for name in (*BASELINES, *(k for k in fc if k.startswith("peer_"))):
        _m4.write_wide(out / f"forecasts_{name}.csv", ids, fc[name])
    published = [
        {"method": k, "smape": v[0], "mase": v[1], "owa": v[2]}
        for k, v in (_m4.PUBLISHED_HOURLY.items() if args.freq == "hourly" else [])
    ]
    result = {"series": series_counts(history, args), "rows": rows, "seeds": seeds, "peers": peers}
    return result | {"published": published}


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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its table and write ``m4.json``."""
    args = parse_args(argv)
    started = time.time()
    result = run(args)
    seconds = time.time() - started
    s = result["series"]
    print(
        f"\nM4 {args.freq} ({s['n_series']} series, horizon {args.horizon}, m {args.m}; model {args.model}, "
        f"lookback {args.lookback}; padded {s['n_padded']}, Naive2 fallback {s['n_fallback_naive2']})"
    )
    columns = ("method", "source", "smape", "mase", "owa", *(("seconds",) if result["peers"] else ()))
    print(common.table(printed(result), columns))
    config = {k: v for k, v in vars(args).items() if k != "out"}
    common.save_result(Path(args.out) / "m4.json", "m4", config, seconds=seconds, **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Accuracy on the ETTh protocol: LSTM and GRU, S, MS and M, horizons 24 and 96, beside naive baselines.

    python benchmarks/accuracy.py --data /path/to/ETTh1.csv [--seeds 3] [--norm last] [--no-skip] [--quick]
        [--segment 24 --decoder parallel]
    python benchmarks/accuracy.py --data /path/to/ETTh1.csv --experiment etth1_m --seeds 1 --first-seed K

S forecasts OT from its own history; MS adds the six load columns as dynamic covariates; M forecasts all
seven columns as one wide panel with one global model (benchmarks/_multivariate.py), beside the published
lookback-96 results. Every piece is
the package's own: Split, Preprocessor (train-only scaling), WindowDataModule, ForecastModule, the
Trainer of splineforecast.training.build_trainer (best checkpoint scored, as a run does), and
splineforecast.evaluation for baselines and metrics. MSE/MAE are in the scaled space (the usual ETTh
convention); MAE/RMSE/MASE in original units (MASE over the train part's seasonal-naive MAE, season 24).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import _common as common
import _multivariate as multivariate
import numpy as np

from splineforecast.models.registry import DECODERS, MODEL_NAMES

MODELS = MODEL_NAMES
SETTINGS = ("S", "MS", "M")
DEFAULT_SETTINGS = ("S", "MS")  # M (about 10 minutes a seed here) runs when asked for
HORIZONS = (24, 96)
SEASON = 24
METRIC_KEYS = ("mse_scaled", "mae_scaled", "mae", "rmse", "mase")


def parser() -> argparse.ArgumentParser:
    p = common.base_parser(__doc__.splitlines()[0], "accuracy")
    p.add_argument("--experiment", default=None, help="M: configs/experiment/NAME.yaml; flags given override it")
    p.add_argument("--seeds", type=int, default=3, help="seeds per model (default 3; 1 with --quick)")
    p.add_argument("--first-seed", type=int, default=0, help="the seeds are FIRST..FIRST+SEEDS-1 (default 0)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {','.join(MODELS)}")
    p.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help="comma list of S,MS,M (default S,MS)")
    p.add_argument("--horizons", default=",".join(map(str, HORIZONS)), help="comma list (default 24,96)")
    p.add_argument("--norm", choices=("last", "mean", "none"), default="last", help="window normalisation")
    p.add_argument("--skip", action=argparse.BooleanOptionalAction, default=True, help="the linear skip path")
    p.add_argument("--segment", type=int, default=1, help="model.segment: steps per segment (default 1: point-wise)")
    p.add_argument("--decoder", choices=DECODERS, default="direct", help="model.decoder (default direct)")
    p.add_argument("--dropout", type=float, default=0.0, help="model.dropout (default 0)")
    p.add_argument("--loss", choices=("auto", "mse", "mae"), default="auto", help="model.loss (default auto: mse)")
    p.add_argument("--lr", type=float, default=1e-3, help="model.lr (default 0.001)")
    p.add_argument("--series-embedding", type=int, default=0, help="M: model.series_embedding (default 0: none)")
    p.add_argument("--lookback", type=int, default=96)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument(
        "--max-windows-per-series",
        type=int,
        default=4000,
        help="M: train windows drawn per channel and epoch (data.max_windows_per_series; 0 = all)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's own choice)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 epoch of 3 batches, 1 seed")
    return p


def explicit(argv: list[str] | None) -> list[str]:
    """The options the command line gave (their argparse names), told from those left at their defaults."""
    quiet = parser()
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    return sorted(vars(quiet.parse_args(argv)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    args.explicit = explicit(argv)
    args.models = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    args.settings = [s.strip().upper() for s in args.settings.split(",") if s.strip()]
    args.horizons = [int(h) for h in args.horizons.split(",") if h.strip()]
    if set(args.models) - set(MODELS) or set(args.settings) - set(SETTINGS):
        p.error(f"--models from {MODELS}, --settings from {SETTINGS}")
    if args.experiment:
        check_experiment(p, args)
    if args.quick:
        args.epochs, args.seeds = 1, 1 if args.seeds == 3 else args.seeds
        args.explicit.append("epochs")
    return args


def check_experiment(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--experiment`` is setting M's: it names an existing file, and its model and horizon hold unless given."""
    from splineforecast.config import config_dir

    if not (config_dir() / "experiment" / f"{args.experiment}.yaml").is_file():
        p.error(f"--experiment {args.experiment}: there is no configs/experiment/{args.experiment}.yaml")
    if "settings" not in args.explicit:
        args.settings = ["M"]
    if args.settings != ["M"]:
        p.error(f"--experiment runs setting M only; drop --settings {','.join(args.settings)} or give --settings M")
    args.models = args.models if "models" in args.explicit else [None]
    args.horizons = args.horizons if "horizons" in args.explicit else [None]


def prepare(frame: Any, split: Any, setting: str) -> tuple[Any, np.ndarray, np.ndarray]:
    """Fit the Preprocessor on train and transform; returns it, the scaled values and the observed mask."""
    from splineforecast.data.preprocess import Preprocessor

    covariates = common.dynamic_covariates(common.LOADS) if setting == "MS" else []
    columns = [common.TARGET, *common.LOADS]
    pre = Preprocessor(common.TARGET, covariates, common.SPLINE, "h", "benchmark")
    out = pre.fit(frame[columns], split).transform(frame[columns], split)
    return pre, out.values, out.observed_mask


def trainer_config(args: argparse.Namespace) -> Any:
    """The Trainer settings of every model: patience never stops a short run early; --quick caps the batches."""
    from splineforecast.config import TrainerConfig

    return TrainerConfig(
        max_epochs=args.epochs,
        patience=max(args.epochs, 8),
        enable_progress_bar=False,
        limit_train_batches=3 if args.quick else 1.0,
        limit_val_batches=2 if args.quick else 1.0,
    )


def fit_best(module: Any, data: Any, trainer_cfg: Any, callbacks: Sequence[Any] = ()) -> tuple[int, float]:
    """Fit as a run does and load the best checkpoint into ``module``; returns the epochs reached and fit seconds."""
    import torch

    from splineforecast.training import build_trainer

    with common.checkpoint_paths("accuracy") as files:
        trainer = build_trainer(trainer_cfg, files.best_ckpt, files.last_ckpt, list(callbacks))
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=data)
        seconds = time.perf_counter() - t0
        state = torch.load(files.best_ckpt, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    return trainer.current_epoch, seconds


def model_config(args: argparse.Namespace, model: str) -> Any:
    """The ModelConfig of the command line's model settings (``auto`` keys not yet settled)."""
    from splineforecast.config import ModelConfig

    return ModelConfig(
        name=model,
        hidden_size=args.hidden,
        num_layers=args.layers,
        dropout=args.dropout,
        norm=args.norm,
        skip=args.skip,
        segment=args.segment,
        decoder=args.decoder,
        loss=getattr(args, "loss", "auto"),
        lr=getattr(args, "lr", 1e-3),
    )


def train_one(
    values: np.ndarray,
    mask: np.ndarray,
    split: Any,
    args: argparse.Namespace,
    model: str,
    horizon: int,
    seed: int,
    callbacks: Sequence[Any] = (),
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Train one model; returns its scaled test forecast (n, horizon), the test dataset, and training facts."""
    import dataclasses

    from splineforecast.evaluation import predict

    data = common.window_data(values, mask, split, args.lookback, horizon, args.batch_size, seed)
    model_cfg = model_config(args, model)
    model_cfg.settle(panel=False, season_length=data.spec.season_length, lookback=args.lookback)  # one series
    trainer_cfg = trainer_config(args)
    module = common.seeded_module(dataclasses.asdict(model_cfg), data.spec, seed)
    epochs, seconds = fit_best(module, data, trainer_cfg, callbacks)
    test = data.datasets["test"]
    forecast = predict(module.net, test)[:, :, 0].astype(np.float64)
    facts = {"epochs": epochs, "train_seconds": seconds, "windows": {k: len(v) for k, v in data.datasets.items()}}
    return forecast, test, facts


def scores(forecast_scaled: np.ndarray, ctx: dict[str, Any]) -> dict[str, float]:
    """Scaled MSE/MAE and original-unit MAE/RMSE/MASE of one (n, horizon) scaled forecast."""
    from splineforecast.evaluation import score

    points = ctx["points"]
    scaled = score(ctx["truth_scaled"][points], forecast_scaled[points], ctx["unit_scale"])
    original = score(ctx["truth"][points], ctx["pre"].inverse_target(forecast_scaled)[points], ctx["scale"])
    return {
        "mse_scaled": scaled["mse"],
        "mae_scaled": scaled["mae"],
        "mae": original["mae"],
        "rmse": original["rmse"],
        "mase": original["mase"],
    }


def context(
    pre: Any,
    values: np.ndarray,
    mask: np.ndarray,
    frame: Any,
    split: Any,
    starts: np.ndarray,
    lookback: int,
    horizon: int,
) -> dict[str, Any]:
    """Truth in both spaces, the scored points and the MASE scale, shared by the model and the baselines."""
    from splineforecast.evaluation import Scale, train_scale, truth

    series_scaled = values[:, 0].astype(np.float64)
    raw = pre.raw_target(frame, split)
    observed = mask[:, 0]
    truth_scaled, seen = truth(series_scaled, observed, starts, lookback, horizon)
    truth_raw, _ = truth(raw, observed, starts, lookback, horizon)
    a, b = split.train
    return {
        "pre": pre,
        "series_scaled": series_scaled,
        "truth_scaled": truth_scaled,
        "truth": truth_raw,
        "points": seen,
        "scale": train_scale(raw[a:b], observed[a:b], SEASON),
        "unit_scale": Scale(mase=1.0, mape_eps=1.0),
    }


def scored_row(
    setting: str, horizon: int, model: str, seed: int | None, forecast: np.ndarray, ctx: dict[str, Any], n: int
) -> dict[str, Any]:
    """One result row: what was forecast, its scores, and the number of test windows."""
    return {
        "setting": setting,
        "horizon": horizon,
        "model": model,
        "seed": seed,
        **scores(forecast, ctx),
        "n_windows": n,
    }


def baseline_rows(setting: str, horizon: int, ctx: dict[str, Any], starts: np.ndarray, lookback: int) -> list[Any]:
    """The naive baselines' rows on the same test windows; each must forecast every scored point."""
    from splineforecast.evaluation import baseline_forecasts

    rows = []
    for name, pred in baseline_forecasts(ctx["series_scaled"], starts, lookback, horizon, SEASON).items():
        ok = bool(np.isfinite(pred[ctx["points"]]).all())
        assert ok, f"{name} has no forecast for some test point"
        rows.append(scored_row(setting, horizon, name, None, pred, ctx, len(starts)))
    return rows


def run_horizon(
    args: argparse.Namespace,
    frame: Any,
    split: Any,
    prepared: tuple[Any, np.ndarray, np.ndarray],
    setting: str,
    horizon: int,
) -> list[dict[str, Any]]:
    """Every model and seed at one setting and horizon, and the baselines beside them."""
    pre, values, mask = prepared
    rows: list[dict[str, Any]] = []
    ctx: dict[str, Any] | None = None
    for model in args.models:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            forecast, test, facts = train_one(values, mask, split, args, model, horizon, seed)
            if ctx is None:  # the test windows are known once a data module is built: score the baselines then
                starts = test.starts.numpy()
                ctx = context(pre, values, mask, frame, split, starts, args.lookback, horizon)
                rows += baseline_rows(setting, horizon, ctx, starts, args.lookback)
            row = {**scored_row(setting, horizon, model, seed, forecast, ctx, len(test)), **facts}
            rows.append(row)
            print(
                f"  {setting} h={horizon} {model} seed={seed}: mse_scaled={row['mse_scaled']:.4f} "
                f"mae={row['mae']:.4f} ({facts['train_seconds']:.0f} s)",
                flush=True,
            )
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score every setting, horizon, model and seed; the rows and their summary."""
    split = common.make_split(args.split)
    frame = common.read_etth(args.data, split.n_rows)
    rows: list[dict[str, Any]] = []
    for setting in args.settings:
        if setting == "M":
            for horizon in args.horizons:
                rows += multivariate.run_horizon(args, horizon, fit_best, trainer_config(args))
            continue
        prepared = prepare(frame, split, setting)
        for horizon in args.horizons:
            rows += run_horizon(args, frame, split, prepared, setting, horizon)
    published = multivariate.published_rows() if "M" in args.settings else []
    return {"rows": rows, "summary": summarise(rows), "published": published}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread (sample std over seeds) per setting, horizon and model."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["horizon"], r["model"]), []).append(r)
    out = []
    for (setting, horizon, model), rs in groups.items():
        entry: dict[str, Any] = {"setting": setting, "horizon": horizon, "model": model, "seeds": len(rs)}
        for key in METRIC_KEYS:
            entry[key], entry[f"{key}_std"] = common.mean_spread([r[key] for r in rs])
        out.append(entry)
    return out


def summary_lines(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The printed summary: each metric as mean ± std, the spread only for models trained on several seeds."""
    lines = []
    for s in summary:
        line = {k: s[k] for k in ("setting", "horizon", "model", "seeds")}
        for key in METRIC_KEYS:
            line[key] = f"{s[key]:.4f}" + (
                f" ±{s[key + '_std']:.4f}" if s["seeds"] > 1 and s["model"] in MODELS else ""
            )
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print its summary table and write its JSON."""
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # on a shared CPU, one thread each is often faster
    started = time.time()
    result = run(args)
    seconds = time.time() - started
    settings = (
        f"experiment {args.experiment}, flags given: {', '.join(args.explicit)}"
        if args.experiment
        else (
            f"norm={args.norm}, skip={args.skip}, segment {args.segment}, decoder {args.decoder}, "
            f"{args.epochs} epochs, lookback {args.lookback}"
        )
    )
    print(f"\naccuracy ({settings}; mean ± std over seeds)")
    print(common.table(summary_lines(result["summary"]), ("setting", "horizon", "model", "seeds", *METRIC_KEYS)))
    if result["published"]:
        print("\nETTh1 M, horizon 96, lookback 96: ours beside the published results (scaled MSE / MAE)")
        print(
            common.table(
                multivariate.comparison(result["summary"], args.lookback),
                ("model", "source", "mse_scaled", "mae_scaled"),
            )
        )
    common.save_result(args.out, "accuracy", common.run_config(args), seconds=seconds, **result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

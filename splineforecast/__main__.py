"""``python -m splineforecast [overrides]``: the Hydra entry point.

Any failure ends here: one JSON line on stderr (SPEC §3) and its exit code, never a traceback.
Contract checks run before torch, Lightning or MLflow are imported.

A failed job prints its payload where it ran and raises :class:`JobFailed` with its exit code; that
exception is the one way a job's failure reaches :func:`main`, for a single run, a sweep job run in
this process, and a job run by a joblib or submitit worker (Hydra carries it back in the JobReturn).
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import sys
import time
import typing
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from splineforecast import bounds
from splineforecast.config import Config, config_dir, register_configs
from splineforecast.contracts import check
from splineforecast.errors import ContractError, ErrorCode, Interrupted, to_payload
from splineforecast.files import disk_full, disk_full_message

SUMMARY_METRICS = ("mae", "rmse", "mape", "mase", "r2")
NEW_RUN_STAGES = ("all", "preprocess", "backtest")  # the stages that start a run, so may name it themselves
# an MLflow server that does not answer fails a call in seconds, not MLflow's minutes (7 retries, backoff 2,
# a 120 s timeout); a value set in the environment wins
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


class JobFailed(BaseException):
    """A job failed and printed its payload; ``exit_code`` is what the command exits with.

    A BaseException, as KeyboardInterrupt is, so that a single run's failure passes Hydra untouched:
    ``run_job`` catches ``Exception`` into the JobReturn, and re-raising it for a single run Hydra
    first prints "Error executing job". Pickles by its exit code (``__reduce__``).
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"the job failed with exit code {exit_code} (its JSON line is on stderr)")
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[type[JobFailed], tuple[int]]:
        return type(self), (self.exit_code,)


class SweepJobFailed(JobFailed, Exception):
    """A failed job of a sweep: an Exception, so ``run_job`` keeps it in the job's JobReturn (pickled
    back from joblib and submitit workers) and the other jobs still run. Hydra's basic sweeper then
    raises the first failed job's by job number; the Optuna sweeper counts the trial failed and goes
    on (``max_failure_rate: 1.0`` in ``configs/hparams_search/optuna.yaml``)."""


def new_run_id() -> str:
    """A fresh run_id: UTC time plus a random suffix (``20261126-051600-3fa9c1``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _unknown_keys(node: Any, schema: Any, prefix: str = "") -> list[str]:
    """Keys of ``node`` that the dataclass ``schema`` lacks (``+foo=1`` slips past struct mode)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    unknown = []
    for key in node:
        if key not in fields:
            unknown.append(f"{prefix}{key}")
        elif isinstance(node[key], DictConfig) and dataclasses.is_dataclass(hints[key]):
            unknown += _unknown_keys(node[key], hints[key], f"{prefix}{key}.")
    return unknown


def _job_config(cfg: DictConfig) -> tuple[Config, list[str], dict[str, str]]:
    hc = HydraConfig.get()
    unknown = _unknown_keys(cfg, Config)
    if unknown:
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"unknown config key(s) {unknown}; check the spelling against `python -m splineforecast --cfg job`",
        )
    try:
        config: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except MissingMandatoryValue as exc:
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"`{exc.full_key}` must be set, e.g. `{exc.full_key}=...` on the command line",
        ) from exc
    given = [o.split("=", 1)[1] for o in hc.overrides.task if o.startswith("run_id=")]
    if given and given[-1].strip("'\"") != str(config.run_id):
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"run_id={given[-1]} was read as {config.run_id!r}; quote it for Hydra: \"run_id='{given[-1]}'\"",
        )
    tags: dict[str, str] = {}
    if hc.mode == RunMode.MULTIRUN:
        tags = {"splineforecast.sweep": str(hc.sweep.dir), "splineforecast.job": str(hc.job.num)}
        if config.run_id is not None:  # one run_id per job of the sweep
            config.run_id = f"{config.run_id}-{hc.job.num}"
    if config.run_id is None and config.stage in NEW_RUN_STAGES:
        config.run_id = new_run_id()  # stage=train/predict without one is refused by contracts.check_config
    return config, list(hc.overrides.task), tags


def _print_summary(result: Any) -> None:
    lines = [""]
    if result.result is not None:
        rows = {"model": result.result.metrics, **result.result.baselines}
        lines.append(f"{'test':<16}" + "".join(f"{m:>10}" for m in SUMMARY_METRICS))
        for name, scores in rows.items():
            lines.append(f"{name:<16}" + "".join(f"{scores[m]:>10.4g}" for m in SUMMARY_METRICS))
        panel = result.result.panel
        if panel is not None:  # the rows above are means over series; sMAPE and MASE per series, averaged
            lines += ["", f"{f'{panel.n_series} series':<16}{'mean sMAPE':>12}{'mean MASE':>12}"]
            lines += [f"{n:<16}{m['smape']:>12.4g}{m['mase']:>12.4g}" for n, m in panel.mean.items()]
        lines += _uncertainty_lines(result.result.uncertainty)
        lines.append("")
    lines.append(f"run_id:        {result.run_id}")
    if result.mlflow_run_id:  # stage=predict records no MLflow run
        lines += [
            f"MLflow run id: {result.mlflow_run_id}",
            f"MLflow UI:     {result.ui_command}   then open {result.ui_url}",
        ]
    print("\n".join(lines), flush=True)


def _uncertainty_lines(uncertainty: dict[str, Any] | None) -> list[str]:
    """The interval scores of a quantile run: coverage and width of each interval, MSIS, CRPS."""
    if not uncertainty:
        return []
    scores = uncertainty["scores"]
    keys = [k for k in scores["model"] if k.startswith(("coverage_", "width_", "msis_"))] + ["crps"]
    lines = ["", f"{'intervals':<16}" + "".join(f"{k:>13}" for k in keys)]
    return lines + [f"{n:<16}" + "".join(f"{s[k]:>13.4g}" for k in keys) for n, s in scores.items()]


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def _task(cfg: DictConfig) -> float | None:
    """One run (or sweep job); returns the sweeper's objective: the run's best val/loss (lower is better).

    None when the run did not train (``stage=preprocess``). A failure prints its payload here, in
    the process that ran the job, and raises :class:`JobFailed` (a single run) or
    :class:`SweepJobFailed` (a job of a sweep) with its exit code.
    """
    try:
        config, overrides, tags = _job_config(cfg)
        checked = check(config)  # check_config first, then the inputs of the stage
        # torch, Lightning and MLflow load only past the checks
        if config.stage == "backtest":
            from splineforecast import backtest

            result = backtest.run(config, overrides, tags, checked)
        else:
            from splineforecast import pipeline

            result = pipeline.run(config, overrides, tags, checked)
        _print_summary(result)
    except Exception as exc:  # noqa: BLE001 - every failure of a job leaves it as JobFailed
        _fail(exc)
    return None if result.result is None else float(result.result.training.best_val_loss)


def _fail(exc: Exception) -> NoReturn:
    """Print the payload of a job's failure and raise it on as the JobFailed of this run mode."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    raise (SweepJobFailed if multirun else JobFailed)(_report(exc)) from exc


def _valid_keys(message: str) -> str:
    """For an unknown key (``model.hiden_size``), the keys its section does have."""
    match = re.search(r"(?:Could not override|Key) '([\w.]+)'", message)
    if match is None:
        return ""
    node: Any = Config
    for part in match.group(1).split(".")[:-1]:
        types = {f.name: f.type for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        node = typing.get_type_hints(node).get(part) if part in types else None
    if node is None or not dataclasses.is_dataclass(node):
        return ""
    return " Valid keys here: " + ", ".join(f.name for f in dataclasses.fields(node))


def _classify(exc: BaseException) -> tuple[ErrorCode, str]:
    """The SPEC code and message of any exception."""
    if isinstance(exc, ContractError):
        return exc.code, exc.message
    if isinstance(exc, HydraException | OmegaConfBaseException):
        # Hydra appends its search path to a missing option; the options list is what helps
        message = str(exc).split("\nConfig search path:")[0].split("\nTo append to your config")[0].strip()
        return ErrorCode.CONFIG_ERROR, message + _valid_keys(message)
    if isinstance(exc, Interrupted):
        return ErrorCode.INTERRUPTED, f"{exc}; last.ckpt is saved: run the same command again to resume"
    if isinstance(exc, KeyboardInterrupt):
        return ErrorCode.INTERRUPTED, "interrupted"
    full = disk_full(exc)  # also under another library's exception
    if full is not None:
        return ErrorCode.RUNNER_EXEC_ERROR, disk_full_message(full)
    if isinstance(exc, OSError):
        return ErrorCode.RUNNER_EXEC_ERROR, f"I/O error: {exc}"
    return ErrorCode.RUNNER_EXEC_ERROR, f"{type(exc).__name__}: {exc}"


def _report(exc: BaseException) -> int:
    """Print the payload of ``exc`` on stderr and return its exit code."""
    code, message = _classify(exc)
    type_name = exc.type_name if isinstance(exc, ContractError) else type(exc).__name__
    exit_code = exc.exit_code if isinstance(exc, Interrupted) else code.exit_code  # 130 or 143
    # one write of the whole line: parallel jobs share stderr, and a pipe keeps a short write whole
    sys.stderr.write(to_payload(code, message, type_name, exit_code) + "\n")
    sys.stderr.flush()
    return exit_code


def main() -> int:
    """Run the Hydra app; map every failure to its SPEC exit code and JSON payload.

    A failed job has printed its payload already and arrives as :class:`JobFailed`: in a sweep the
    first failed job's by job number, also for jobs run by worker processes (``hydra/launcher=joblib``).
    Anything else (composition, the command line, a sweeper giving up) is reported here.
    """
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach us instead of Hydra's exit 1
    for name, value in MLFLOW_HTTP_DEFAULTS.items():  # read by MLflow at each request, and by the jobs' workers
        os.environ.setdefault(name, value)
    register_configs()
    try:
        bounds.check_overrides(sys.argv[1:])
        _task()
    except JobFailed as failed:
        return failed.exit_code
    except SystemExit as exc:  # argparse refusing the command line (code 2), or --help (0)
        if exc.code in (0, None):
            raise
        message = "unrecognised command line; put -m/--multirun before the overrides (see --help)"
        return _report(ContractError(ErrorCode.CONFIG_ERROR, message, "ArgumentError"))
    except BaseException as exc:  # noqa: BLE001 - the contract: every failure gets a code
        return _report(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m splineforecast [overrides]``: the Hydra entry point.

Any failure ends here: one JSON line on stderr (SPEC §3) and its exit code, never a traceback.
Contract checks run before torch, Lightning or MLflow are imported.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from splineforecast.config import Config, config_dir, register_configs
from splineforecast.contracts import check_config
from splineforecast.errors import ContractError, ErrorCode, to_payload

SUMMARY_METRICS = ("mae", "rmse", "mape", "mase", "r2")


def new_run_id() -> str:
    """A fresh run_id: UTC time plus a random suffix (``20261126-051600-3fa9c1``)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _job_config(cfg: DictConfig) -> tuple[Config, list[str], dict[str, str]]:
    hc = HydraConfig.get()
    try:
        config: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    except MissingMandatoryValue as exc:
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"`{exc.full_key}` must be set, e.g. `{exc.full_key}=...` on the command line",
        ) from exc
    tags: dict[str, str] = {}
    if hc.mode == RunMode.MULTIRUN:
        tags = {"splineforecast.sweep": str(hc.sweep.dir), "splineforecast.job": str(hc.job.num)}
        if config.run_id is not None:  # one run_id per job of the sweep
            config.run_id = f"{config.run_id}-{hc.job.num}"
    check_config(config)
    if config.run_id is None:
        config.run_id = new_run_id()
    return config, list(hc.overrides.task), tags


def _print_summary(result: Any) -> None:
    lines = [""]
    if result.result is not None:
        rows = {"model": result.result["metrics"], **result.result["baselines"]}
        lines.append(f"{'test':<16}" + "".join(f"{m:>10}" for m in SUMMARY_METRICS))
        for name, scores in rows.items():
            lines.append(f"{name:<16}" + "".join(f"{scores[m]:>10.4g}" for m in SUMMARY_METRICS))
        lines.append("")
    lines += [
        f"run_id:        {result.run_id}",
        f"MLflow run id: {result.mlflow_run_id}",
        f"MLflow UI:     {result.ui_command}   then open {result.ui_url}",
    ]
    print("\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def _task(cfg: DictConfig) -> None:
    config, overrides, tags = _job_config(cfg)
    from splineforecast import pipeline  # torch, Lightning and MLflow load only past the checks

    _print_summary(pipeline.run(config, overrides, tags))


def _fail(code: ErrorCode, message: str, type_name: str) -> int:
    print(to_payload(code, message, type_name), file=sys.stderr, flush=True)
    return code.exit_code


def main() -> int:
    """Run the Hydra app; map every failure to its SPEC exit code and JSON payload."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach us instead of Hydra's exit 1
    register_configs()
    try:
        _task()
    except ContractError as exc:
        return _fail(exc.code, exc.message, exc.type_name)
    except (HydraException, OmegaConfBaseException) as exc:
        return _fail(ErrorCode.CONFIG_ERROR, str(exc).strip(), type(exc).__name__)
    except KeyboardInterrupt:
        return _fail(ErrorCode.INTERRUPTED, "interrupted", "KeyboardInterrupt")
    except OSError as exc:
        return _fail(ErrorCode.RUNNER_EXEC_ERROR, f"I/O error: {exc}", type(exc).__name__)
    except Exception as exc:  # noqa: BLE001 - the contract: every failure gets a code
        return _fail(ErrorCode.RUNNER_EXEC_ERROR, f"{type(exc).__name__}: {exc}", type(exc).__name__)
    return 0


if __name__ == "__main__":
    sys.exit(main())

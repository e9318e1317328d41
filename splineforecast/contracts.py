"""Startup checks of the config, in order; the first failure is raised as a ContractError.

Imports neither torch, Lightning nor MLflow, so a refusal is fast.
"""

from __future__ import annotations

from splineforecast.artifacts import check_run_id
from splineforecast.config import MODEL_NAMES, NORMS, STAGES, Config
from splineforecast.data.splines import KINDS
from splineforecast.errors import ContractError, ErrorCode


def _config_error(message: str) -> ContractError:
    return ContractError(ErrorCode.CONFIG_ERROR, message)


def check_config(cfg: Config) -> None:
    """Refuse config values no stage can use (CONFIG_ERROR), naming the key and the value."""
    if cfg.run_id is not None:
        check_run_id(cfg.run_id)
    if cfg.stage not in STAGES:
        raise _config_error(f"`stage` ({cfg.stage}) must be one of {list(STAGES)}")
    for key in ("lookback", "horizon", "stride", "batch_size", "season_length"):
        value = getattr(cfg.data, key)
        if value <= 0:
            raise _config_error(f"`data.{key}` ({value}) must be > 0")
    if cfg.spline.kind not in KINDS:
        raise _config_error(f"`spline.kind` ({cfg.spline.kind}) must be one of {list(KINDS)}")
    if cfg.spline.max_gap < 0:
        raise _config_error(f"`spline.max_gap` ({cfg.spline.max_gap}) must be >= 0")
    _check_model(cfg)
    if cfg.trainer.max_epochs < 1:
        raise _config_error(f"`trainer.max_epochs` ({cfg.trainer.max_epochs}) must be >= 1")
    if cfg.covariate.dynamic or cfg.covariate.static:
        raise _config_error(
            "covariates are not supported yet: leave covariate.dynamic and covariate.static empty"
        )


def _check_model(cfg: Config) -> None:
    model = cfg.model
    if model.name not in MODEL_NAMES:
        raise _config_error(f"`model.name` ({model.name}) must be one of {list(MODEL_NAMES)}")
    if model.norm not in NORMS:
        raise _config_error(f"`model.norm` ({model.norm}) must be one of {list(NORMS)}")
    for key in ("hidden_size", "num_layers"):
        if getattr(model, key) < 1:
            raise _config_error(f"`model.{key}` ({getattr(model, key)}) must be >= 1")
    if not 0 <= model.dropout < 1:
        raise _config_error(f"`model.dropout` ({model.dropout}) must be in [0, 1)")
    if model.lr <= 0:
        raise _config_error(f"`model.lr` ({model.lr}) must be > 0")

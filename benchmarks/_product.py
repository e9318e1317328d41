"""Running the product in this process from benchmark scripts: its Config composed as the command line does."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def compose(overrides: list[str]) -> Any:
    """The product's Config, composed from ``configs/`` with ``overrides`` as the command line builds it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from splineforecast.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return OmegaConf.to_object(hydra_compose("config", overrides=overrides))


def etth1_s(data: str, horizon: int, split: tuple[int, int, int], root: Path, quick: bool) -> list[str]:
    """The overrides of ETTh1 S (``experiment=etth1_s``) on ``data`` with row-count splits, the runs' files and
    MLflow store under ``root``; ``quick``: 1 epoch of 3 train and 2 val batches."""
    train, val, test = split
    return [
        "experiment=etth1_s",
        f"data.path={Path(data).resolve()}",
        f"data.horizon={horizon}",
        f"data.split.train={train}",
        f"data.split.val={val}",
        f"data.split.test={test}",
        "trainer.enable_progress_bar=false",
        *(["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"] if quick else []),
        f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"paths.artifacts={root}/artifacts",
    ]

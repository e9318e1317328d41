"""Every option of every config group composes; schema errors surface at composition."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hydra.errors import ConfigCompositionException, HydraException

from splineforecast.config import GROUP_SCHEMAS, Config, config_dir, flatten
from splineforecast.contracts import check_config
from splineforecast.data import io
from splineforecast.data.splines import KINDS
from splineforecast.errors import ContractError, ErrorCode
from splineforecast.models.factory import REGISTRY
from splineforecast.models.registry import MODEL_NAMES, NORMS

Compose = Callable[[list[str]], Config]

ETTH1 = "data.path=/data/ETTh1.csv"


def _get(cfg: Config, dotted: str) -> object:
    node: object = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


OPTION_VALUES = [
    (["data=co2"], {"data.name": "co2", "data.bundled": "co2_weekly.csv", "data.lookback": 104}),
    (["data=tiny"], {"data.name": "tiny", "data.bundled": "co2_tiny.csv", "data.split.train": 0.6}),
    (
        ["data=etth1", ETTH1],
        {"data.target": "OT", "data.path": "/data/ETTh1.csv", "data.split.train": 8640},
    ),
    *[([f"spline={k}"], {"spline.kind": k}) for k in KINDS],
    *[([f"model={m}"], {"model.name": m}) for m in MODEL_NAMES],
    (["trainer=default"], {"trainer.max_epochs": 40, "trainer.limit_train_batches": 1.0}),
    (["trainer=smoke"], {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2}),
    (["trainer=ddp"], {"trainer.devices": 2, "trainer.strategy": "ddp_spawn", "trainer.max_epochs": 40}),
    (["covariate=none"], {"covariate.name": "none", "covariate.dynamic": []}),
    (["covariate=etth1_loads"], {"covariate.name": "etth1_loads", "covariate.static": []}),
    (["experiment=etth1_ms", ETTH1], {"data.name": "etth1", "covariate.name": "etth1_loads"}),
    (["experiment=etth1_s", ETTH1], {"data.name": "etth1", "covariate.name": "none", "trainer.max_epochs": 5}),
    (["tracking=local"], {"tracking.uri": "sqlite:///mlruns/mlflow.db"}),
]


@pytest.mark.parametrize(("overrides", "expected"), OPTION_VALUES, ids=[" ".join(o) for o, _ in OPTION_VALUES])
def test_every_group_option_composes(compose: Compose, overrides: list[str], expected: dict) -> None:
    cfg = compose(overrides)
    assert isinstance(cfg, Config)
    assert {k: _get(cfg, k) for k in expected} == expected
    check_config(cfg)  # a shipped option passes the startup checks


def _options_on_disk() -> list[tuple[str, str]]:
    root = config_dir()
    return sorted((g.name, p.stem) for g in root.iterdir() if g.is_dir() for p in g.glob("*.yaml"))


def test_the_shipped_options_are_on_disk() -> None:
    expected = {
        ("data", "co2"),
        ("data", "tiny"),
        ("data", "etth1"),
        *(("spline", k) for k in KINDS),
        *(("model", m) for m in MODEL_NAMES),
        ("trainer", "default"),
        ("trainer", "smoke"),
        ("covariate", "none"),
        ("tracking", "local"),
    }
    assert expected <= set(_options_on_disk())


@pytest.mark.parametrize(("group", "option"), _options_on_disk(), ids=[f"{g}={o}" for g, o in _options_on_disk()])
def test_every_option_on_disk_composes_and_passes_the_startup_checks(compose: Compose, group: str, option: str) -> None:
    cfg = compose([f"{group}={option}", *([ETTH1] if "etth1" in option else [])])
    check_config(cfg)


def test_model_and_spline_options_are_the_registries() -> None:
    """One option file per registered name, and nothing else: a new name needs its file, and back."""
    on_disk = _options_on_disk()
    assert sorted(o for g, o in on_disk if g == "model") == sorted(MODEL_NAMES)
    assert sorted(o for g, o in on_disk if g == "spline") == sorted(KINDS)


# the key an option file always sets: its own name (even where it equals the schema default)
NAMING_KEY = {"data": "name", "spline": "kind", "covariate": "name", "model": "name"}
GROUP_FILES = [(g, o) for g, o in _options_on_disk() if g in GROUP_SCHEMAS]


def _schema_defaults(schema: type) -> dict[str, Any]:
    values = {}
    for f in dataclasses.fields(schema):
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
            values[f.name] = dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default
        elif f.default is not dataclasses.MISSING:
            values[f.name] = f.default
    return flatten(values)


@pytest.mark.parametrize(("group", "option"), GROUP_FILES, ids=[f"{g}={o}" for g, o in GROUP_FILES])
def test_option_files_extend_their_schema_and_set_only_what_differs(group: str, option: str) -> None:
    body = yaml.safe_load((config_dir() / group / f"{option}.yaml").read_text()) or {}
    assert body.pop("defaults") == [f"base_{group}", "_self_"]
    defaults = _schema_defaults(GROUP_SCHEMAS[group])
    copies = {k: v for k, v in flatten(body).items() if k != NAMING_KEY.get(group) and defaults.get(k, object()) == v}
    assert copies == {}, f"{group}/{option}.yaml repeats the schema defaults {copies}"


def test_registry_matches_model_names() -> None:
    assert set(REGISTRY) == set(MODEL_NAMES)
    assert len(MODEL_NAMES) == len(set(MODEL_NAMES))


def test_defaults(compose: Compose) -> None:
    cfg = compose([])
    assert (cfg.data.name, cfg.spline.kind, cfg.model.name, cfg.trainer.max_epochs) == (
        "co2",
        "cubic",
        "lstm",
        40,
    )
    assert cfg.run_id is None and cfg.stage == "all" and cfg.overwrite is False
    assert cfg.model.norm in NORMS


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.hiden_size=64"],
        ["model.hidden_size=big"],
        ["data.lookbak=3"],
        ["model=grux"],
        ["trainer.max_epochs=1.5"],
    ],
)
def test_bad_keys_and_values_fail_at_composition(compose: Compose, overrides: list[str]) -> None:
    with pytest.raises(HydraException):
        compose(overrides)


def test_misspelt_key_is_a_composition_error(compose: Compose) -> None:
    with pytest.raises(ConfigCompositionException, match="hiden_size"):
        compose(["model.hiden_size=64"])


def test_etth1_without_a_path_is_refused(compose: Compose) -> None:
    cfg = compose(["data=etth1"])  # composes (data.path is optional), then the path is refused
    assert cfg.data.path is None and cfg.data.bundled is None
    with pytest.raises(ContractError) as info:
        io.resolve_path(cfg.data.path, cfg.data.bundled)
    assert info.value.code is ErrorCode.CONFIG_ERROR and "data.path" in info.value.message


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["data.lookback=0"], "data.lookback"),
        (["data.horizon=-1"], "data.horizon"),
        (["run_id=../evil"], "run_id"),
        (["run_id=a/b"], "run_id"),
        (["stage=serve"], "stage"),
        (["model.norm=batch"], "model.norm"),
        (["model.dropout=1.0"], "model.dropout"),
        (["spline.kind=quintic"], "spline.kind"),
        (["spline.max_gap=-1"], "spline.max_gap"),
        (["trainer.max_epochs=0"], "trainer.max_epochs"),
        (["covariate.dynamic=[co2]"], "target `co2`"),
        (["covariate.dynamic=[a]", "covariate.static=[a]"], "['a']"),
    ],
)
def test_startup_checks_refuse_bad_values(compose: Compose, overrides: list[str], key: str) -> None:
    cfg = compose(overrides)
    with pytest.raises(ContractError) as info:
        check_config(cfg)
    assert info.value.code is ErrorCode.CONFIG_ERROR and info.value.exit_code == 25
    assert key in info.value.message


AUTO = [
    ([], {"model.loss": "mse", "model.skip_init": "random"}),  # one series: as before
    (
        ["data.series_column=site"],
        {"model.loss": "mae", "model.skip_init": "seasonal", "data.scaler": "per_series_mase"},
    ),
    (["data.target=[a,b]"], {"model.loss": "mae", "model.skip_init": "seasonal"}),  # a wide panel
    (["data.series_column=site", "data.season_length=200"], {"model.skip_init": "random"}),  # > lookback 104
    (["data.series_column=site", "model.skip=false"], {"model.skip_init": "random"}),  # no skip path to hold it
    (["data.series_column=site", "model.loss=mse", "model.skip_init=random"], {"model.loss": "mse"}),  # given wins
    (["model.loss=mae", "model.skip_init=seasonal"], {"model.loss": "mae", "model.skip_init": "seasonal"}),
]


@pytest.mark.parametrize(("overrides", "expected"), AUTO, ids=[" ".join(o) or "one series" for o, _ in AUTO])
def test_auto_settles_loss_and_skip_init_by_the_kind_of_input(
    compose: Compose, overrides: list[str], expected: dict
) -> None:
    cfg = compose(overrides)
    assert {k: _get(cfg, k) for k in expected} == expected

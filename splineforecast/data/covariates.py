"""Declared covariates: the covariate_spec.v1 contract, and encoding to numeric features.

Dynamic covariates are past-observed columns that vary over time; static covariates hold one
value for the whole series. Types: ``numeric`` (as is), ``boolean`` (0/1) and ``categorical``
(one-hot over the categories seen in the train part; an unseen category encodes as all zeros).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from splineforecast import bounds
from splineforecast.errors import ContractError, ErrorCode

SPEC_SCHEMA = "covariate_spec.v1"
TYPES = ("numeric", "categorical", "boolean")
ROLES = ("dynamic", "static")
_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "0.0"}
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, escapes included
_OPENERS, _CLOSERS = np.frombuffer(b"[{", dtype=np.uint8), np.frombuffer(b"]}", dtype=np.uint8)


@dataclass(frozen=True)
class Covariate:
    name: str
    role: str  # dynamic | static
    type: str  # numeric | categorical | boolean


def _spec_error(message: str) -> ContractError:
    return ContractError(ErrorCode.ARTIFACT_CONTRACT_ERROR, message)


def _spec_items(spec: dict[str, Any], group: str) -> list[dict[str, Any]]:
    items = spec.get(group, [])
    if not isinstance(items, list):
        raise _spec_error(f"covariate spec `{group}` must be a list, got {type(items).__name__}")
    names: list[str] = []
    for i, item in enumerate(items):
        where = f"covariate spec `{group}[{i}]`"
        if not isinstance(item, dict):
            raise _spec_error(f"{where} must be an object, got {type(item).__name__}")
        if not isinstance(item.get("name"), str) or not item["name"].strip():
            raise _spec_error(f"{where}: `name` must be a non-empty string")
        if item.get("type") not in TYPES:
            raise _spec_error(
                f"{where} ({item['name']}): `type` must be one of {list(TYPES)}, got {item.get('type')!r}"
            )
        if not isinstance(item.get("required"), bool):
            raise _spec_error(f"{where} ({item['name']}): `required` must be true or false")
        if item["name"] in names:
            raise _spec_error(f"covariate spec `{group}` names `{item['name']}` twice")
        names.append(item["name"])
    return items


def json_depth(text: bytes) -> int:
    """How deep the arrays and objects of the JSON text ``text`` nest (0 for a scalar), counted without
    parsing it: brackets inside strings are skipped. Linear in the length, whatever the nesting."""
    outside = _JSON_STRING.sub(b'""', text)
    codes = np.frombuffer(outside, dtype=np.uint8)
    step = np.isin(codes, _OPENERS).astype(np.int64) - np.isin(codes, _CLOSERS)
    return int(np.cumsum(step).max(initial=0))


def read_spec(path: str) -> dict[str, Any]:
    """Load a covariate spec file (JSON). Missing file: FILE_NOT_FOUND; bad JSON, or a file larger than
    ``bounds.SPEC_MAX_BYTES`` or nested deeper than ``bounds.SPEC_MAX_DEPTH``: contract error, before the
    file is parsed."""
    import json

    p = Path(path)
    if not p.is_file():
        raise ContractError(ErrorCode.FILE_NOT_FOUND, f"covariate.spec `{path}` does not exist", "FileNotFoundError")
    size = p.stat().st_size
    if size > bounds.SPEC_MAX_BYTES:
        raise _spec_error(
            f"covariate spec `{path}` is {bounds.human_bytes(size)}, above the bound of "
            f"{bounds.human_bytes(bounds.SPEC_MAX_BYTES)} (splineforecast/bounds.py SPEC_MAX_BYTES); "
            "a covariate_spec.v1 file lists the covariates only: give that file"
        )
    raw = p.read_bytes()
    depth = json_depth(raw)
    if depth > bounds.SPEC_MAX_DEPTH:
        raise _spec_error(
            f"covariate spec `{path}` nests {depth} levels deep, above the bound of {bounds.SPEC_MAX_DEPTH} "
            "(splineforecast/bounds.py SPEC_MAX_DEPTH); a covariate_spec.v1 document nests 3 "
            "(root object, covariate list, item): give that file"
        )
    try:
        spec = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _spec_error(f"covariate spec `{path}` is not valid JSON: {exc}") from exc
    return spec


def check_spec(spec: Any, dynamic: list[str], static: list[str], available: list[str]) -> dict[str, str]:
    """Check a covariate_spec.v1 document against the declared covariates and the data columns.

    Returns:
        The type of each covariate named in the spec.

    Raises:
        ContractError: ARTIFACT_CONTRACT_ERROR naming what is missing or undefined, with the
            declared, spec and available names.
    """
    if not isinstance(spec, dict):
        raise _spec_error(f"covariate spec must be a JSON object, got {type(spec).__name__}")
    if spec.get("schema_version") != SPEC_SCHEMA:
        raise _spec_error(f"covariate spec schema_version is {spec.get('schema_version')!r}, expected {SPEC_SCHEMA!r}")
    if not isinstance(spec.get("imputation_policy", {}), dict):
        raise _spec_error("covariate spec `imputation_policy` must be an object")
    items = {g: _spec_items(spec, f"{g}_covariates") for g in ROLES}
    spec_names = {g: [i["name"] for i in items[g]] for g in ROLES}
    both = sorted(set(spec_names["dynamic"]) & set(spec_names["static"]))
    if both:
        raise _spec_error(f"covariate spec lists {both} as both dynamic and static")
    declared = {"dynamic": list(dynamic), "static": list(static)}
    snapshot = (
        f"declared: dynamic={declared['dynamic']} static={declared['static']}; "
        f"spec: dynamic={spec_names['dynamic']} static={spec_names['static']}; available columns: {available}"
    )
    for g in ROLES:
        required = [i["name"] for i in items[g] if i["required"]]
        missing = [n for n in required if n not in declared[g]]
        if missing:
            raise _spec_error(f"required {g} covariate(s) {missing} are not declared in covariate.{g} ({snapshot})")
        undefined = [n for n in declared[g] if n not in spec_names[g]]
        if undefined:
            raise _spec_error(f"declared {g} covariate(s) {undefined} are not in the spec ({snapshot})")
    absent = [n for n in declared["dynamic"] if n not in available]
    if absent:
        raise _spec_error(f"dynamic covariate(s) {absent} are not columns of the data ({snapshot})")
    return {i["name"]: i["type"] for g in ROLES for i in items[g]}


def declared_covariates(
    dynamic: list[str], static: list[str], types: dict[str, str], spec_types: dict[str, str] | None
) -> list[Covariate]:
    """The declared covariates with their types (spec first, then ``types`` from covariate.categorical
    and covariate.boolean, else numeric)."""
    out = []
    for role, names in (("dynamic", dynamic), ("static", static)):
        for name in names:
            kind = (spec_types or {}).get(name) or types.get(name, "numeric")
            if kind not in TYPES:
                raise ContractError(
                    ErrorCode.CONFIG_ERROR, f"covariate `{name}` has type {kind!r}; it must be one of {list(TYPES)}"
                )
            out.append(Covariate(name, role, kind))
    return out


def _as_boolean(column: pd.Series) -> np.ndarray:
    out = np.full(len(column), np.nan)
    for i, value in enumerate(column.to_numpy()):
        if pd.isna(value):
            continue
        token = str(value).strip().lower()
        if token in _TRUE:
            out[i] = 1.0
        elif token in _FALSE:
            out[i] = 0.0
        else:
            raise ContractError(
                ErrorCode.DATA_SCHEMA_ERROR,
                f"boolean covariate `{column.name}` at {column.index[i]}: {value!r} is not true/false/1/0/yes/no",
            )
    return out


class CovariateEncoder:
    """Encode covariate columns as float features; categories are learned from the train part.

    Args:
        covariates: the declared covariates, in feature order.
    """

    def __init__(self, covariates: list[Covariate]) -> None:
        self.covariates = list(covariates)

    def fit(self, train: pd.DataFrame) -> CovariateEncoder:
        self.categories_: dict[str, list[str]] = {}
        for c in self.covariates:
            if c.type == "categorical":
                seen = train[c.name].dropna().astype(str)
                self.categories_[c.name] = sorted(seen.unique().tolist())
        return self

    @property
    def feature_names(self) -> list[str]:
        names = []
        for c in self.covariates:
            if c.type == "categorical":
                names += [f"{c.name}={v}" for v in self.categories_[c.name]]
            else:
                names.append(c.name)
        return names

    @property
    def step_features(self) -> list[str]:
        """Encoded features whose gaps are filled with the previous state, not a spline."""
        return [n for n in self.feature_names if n not in {c.name for c in self.covariates if c.type == "numeric"}]

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Float features, NaN where the covariate was missing."""
        columns: dict[str, np.ndarray] = {}
        for c in self.covariates:
            raw = frame[c.name]
            if c.type == "numeric":
                columns[c.name] = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            elif c.type == "boolean":
                columns[c.name] = _as_boolean(raw)
            else:
                text = raw.astype(str).where(raw.notna())
                for v in self.categories_[c.name]:
                    columns[f"{c.name}={v}"] = np.where(raw.isna(), np.nan, (text == v).to_numpy(dtype=np.float64))
        return pd.DataFrame(columns, index=frame.index)

    def to_json(self) -> dict[str, Any]:
        return {
            "covariates": [{"name": c.name, "role": c.role, "type": c.type} for c in self.covariates],
            "categories": self.categories_,
        }

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> CovariateEncoder:
        enc = cls([Covariate(**c) for c in state["covariates"]])
        enc.categories_ = {k: list(v) for k, v in state["categories"].items()}
        return enc


def check_static(frame: pd.DataFrame, static: list[str]) -> None:
    """Static covariates hold one value over the series (DATA_SCHEMA_ERROR otherwise)."""
    for name in static:
        values = frame[name].dropna().astype(str).unique()
        if len(values) > 1:
            raise ContractError(
                ErrorCode.DATA_SCHEMA_ERROR,
                f"static covariate `{name}` takes {len(values)} values ({list(values[:5])}...); "
                "a static covariate is constant over the series: declare it in covariate.dynamic",
            )

"""The package's layering and one-home rules, read from its source (ast) and its imports.

A run flows config -> contracts -> data -> windows -> models -> training -> evaluation -> tracking ->
CLI/API: only tracking.py, its SQL run listing tracking_sql.py (and the pyfunc model's code file) import
mlflow; data/ and models/ import nothing from training, tracking, pipeline or api; the networks load
without Lightning; every run file name lives in the artifact layer; model names and spline kinds are listed
only in their registries.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from splineforecast.data.splines import KINDS
from splineforecast.models.registry import MODEL_NAMES

PACKAGE = Path(__file__).resolve().parents[1] / "splineforecast"
SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))
RUN_FILES = (
    "processed.npz meta.json split_contract.json preprocessor.json best.ckpt last.ckpt config.yaml "
    "overrides.yaml metrics.json report.md forecast.png serving.json forecast.csv test_forecast.csv"
).split()


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from x import y`` counts as ``x`` and ``x.y``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def _importers(prefix: str) -> set[str]:
    return {_name(p) for p in SOURCES if any(m == prefix or m.startswith(prefix + ".") for m in _imports(p))}


def test_the_sources_are_found() -> None:
    assert {"splineforecast/tracking.py", "splineforecast/artifacts.py"} <= {_name(p) for p in SOURCES}


def test_only_tracking_and_the_pyfunc_code_import_mlflow() -> None:
    assert _importers("mlflow") == {
        "splineforecast/tracking.py",
        "splineforecast/tracking_sql.py",
        "splineforecast/pyfunc_model.py",
    }


def test_tracking_does_not_import_lightning() -> None:
    imports = _imports(PACKAGE / "tracking.py")
    assert not {m for m in imports if m.split(".")[0] in ("pytorch_lightning", "lightning", "lightning_fabric")}


@pytest.mark.parametrize("layer", ["data", "models"])
def test_data_and_models_import_nothing_downstream(layer: str) -> None:
    downstream = ("training", "tracking", "pipeline", "api", "evaluation", "serving", "__main__")
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = {m for m in _imports(path) if m.split(".")[:2] in [["splineforecast", d] for d in downstream]}
        assert not bad, (_name(path), bad)


def test_networks_and_their_data_spec_load_without_lightning() -> None:
    code = (
        "import sys, splineforecast.models.factory, splineforecast.models.spec\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning', 'mlflow'))\n"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_run_file_names_live_in_the_artifact_layer() -> None:
    """No path is built from a run file's name outside artifacts.py (prose in messages may mention them)."""
    found = {
        (_name(p), text)
        for p in SOURCES
        if p.name != "artifacts.py"
        for _, text in _string_constants(p)
        if any(text == f or text.endswith("/" + f) for f in RUN_FILES)
    }
    assert found == {("splineforecast/config.py", "config.yaml")}  # the root of configs/, not a run file


def _listed(node: ast.AST) -> list[str]:
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", [])
    return [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]


@pytest.mark.parametrize(
    ("names", "home"), [(MODEL_NAMES, "models/registry.py"), (KINDS, "data/splines.py")], ids=["models", "splines"]
)
def test_names_are_listed_only_in_their_registry(names: tuple[str, ...], home: str) -> None:
    assert len(names) >= 2
    lists = [
        (_name(p), node.lineno)
        for p in SOURCES
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) and len(set(_listed(node)) & set(names)) >= 2
    ]
    assert {f for f, _ in lists} == {f"splineforecast/{home}"}, lists

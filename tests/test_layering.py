"""The import layers (docs/architecture.md), lowest first:

    core (partrm_gym/ without app/)  <  model  <  envs, train  <  policies  <  app (partrm_gym/app/)

A module may import its own layer and the layers below it; ``envs`` and ``train`` share a layer and import
neither each other. Every import counts, also one inside a function (a lazy import is still a dependency);
imports under ``if TYPE_CHECKING:`` do not (they never run)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# layer name -> (rank, source folder, the import prefix of its modules)
LAYERS = {
    "core": (0, ROOT / "partrm_gym", "partrm_gym"),
    "model": (1, ROOT / "model", "partrm_gym.model"),
    "envs": (2, ROOT / "envs", "partrm_gym.envs"),
    "train": (2, ROOT / "train", "partrm_gym.train"),
    "policies": (3, ROOT / "policies", "partrm_gym.policies"),
    "app": (4, ROOT / "partrm_gym" / "app", "partrm_gym.app"),
}


def layer_of_module(name: str) -> str | None:
    """The layer an imported module name belongs to (None: not this package's)."""
    if name != "partrm_gym" and not name.startswith("partrm_gym."):
        return None
    for layer in ("app", "model", "envs", "train", "policies"):
        prefix = LAYERS[layer][2]
        if name == prefix or name.startswith(prefix + "."):
            return layer
    if name.startswith("partrm_gym.configs"):
        return "core"  # shipped YAML files, no code
    return "core"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(source: str) -> set[str]:
    """Every module a source imports, outside ``if TYPE_CHECKING:`` blocks."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)  # `from partrm_gym import model`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return names


def modules_of(layer: str) -> list[Path]:
    _, folder, _ = LAYERS[layer]
    files = sorted(folder.rglob("*.py"))
    if layer == "core":
        files = [p for p in files if "app" not in p.relative_to(folder).parts]
    return files


def allowed(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    if {importer, imported} == {"envs", "train"}:
        return False
    return LAYERS[imported][0] <= LAYERS[importer][0]


@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer_imports_only_lower_layers(layer):
    files = modules_of(layer)
    assert files, f"no modules found for layer {layer}"
    offenders = {}
    for path in files:
        bad = sorted(name for name in imported_modules(path.read_text())
                     if (other := layer_of_module(name)) is not None and not allowed(layer, other))
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def test_every_package_folder_is_in_a_layer():
    """A new package folder must be given a layer here, or the test would not look at it."""
    covered = {LAYERS[layer][1] for layer in LAYERS}
    packages = {p.parent for p in ROOT.glob("*/__init__.py")} - {ROOT / "configs", ROOT / "tests"}
    assert packages <= covered


def test_a_lazy_upward_import_is_caught():
    """The rule sees an import inside a function (the articulation -> model loop this test was written for)."""
    source = "def f():\n    from partrm_gym.model.partrm import MOVABLE\n"
    assert "partrm_gym.model.partrm" in imported_modules(source)
    assert not allowed("core", layer_of_module("partrm_gym.model.partrm"))
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from partrm_gym.scene import Scene\n"
    assert "partrm_gym.scene" not in imported_modules(guarded)

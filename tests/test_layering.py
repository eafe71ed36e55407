"""The import arrows (docs/architecture.md): the core ``partrm_gym`` package imports none of ``train``, ``envs``
and ``policies``; only ``partrm_gym/app/`` (CLI, demo, compare, bench) may import every layer."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "partrm_gym"
UPPER = ("partrm_gym.train", "partrm_gym.envs", "partrm_gym.policies")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_upper_layer():
    core = [p for p in CORE.rglob("*.py") if "app" not in p.relative_to(CORE).parts]
    assert len(core) > 20
    offenders = {str(p.relative_to(CORE)): sorted(n for n in _imports(p) if n.startswith(UPPER)) for p in core}
    assert {k: v for k, v in offenders.items() if v} == {}

"""Import rules that import-linter cannot state, checked by reading every module's imports with ast.

The layers, the independence of the adapters, "no Kubernetes client outside the adapters", the
core's forbidden libraries and the absence of cycles are contracts in pyproject.toml
([tool.importlinter], run by `lint-imports` in .ci/run). import-linter forbids named modules; what
needs an allow-list lives here: the core may use the standard library and netaddr and nothing else,
and the collector script that ExaBGP runs may use the standard library only.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "bgpflat"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
CORE_ALLOWED_THIRD_PARTY = {"netaddr"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top_level_imports(path: Path) -> set[str]:
    """The top-level package of every import in ``path`` (a relative import is one of bgpflat's)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add("bgpflat" if node.level else (node.module or "").split(".")[0])
    return found


CORE_MODULES = sorted((ROOT / "core").rglob("*.py"))


def test_modules_found() -> None:
    assert any(module_name(p) == "bgpflat.core.net.prefixes" for p in CORE_MODULES)


@pytest.mark.parametrize("path", CORE_MODULES, ids=module_name)
def test_core_uses_only_stdlib_and_netaddr(path: Path) -> None:
    for top in top_level_imports(path) - STDLIB - {"bgpflat"}:
        assert top in CORE_ALLOWED_THIRD_PARTY, (
            f"{module_name(path)} imports third-party {top}; the core may use only the stdlib and netaddr"
        )


def test_collector_is_stdlib_only() -> None:
    collector = ROOT / "peer" / "collector.py"
    assert collector.exists(), "ExaBGP runs bgpflat/peer/collector.py; it must exist"
    outside = top_level_imports(collector) - STDLIB
    assert not outside, f"the collector imports {sorted(outside)}; ExaBGP runs it on a bare Python"

"""The import rules of design.md §2, checked by reading every module's imports with ast.

cli -> (workflows | render | adapters | peer | lab) -> core -> errors. The core is pure: no I/O,
no subprocess, no clocks, no third-party library except netaddr. Adapters are independent of each
other. The collector script that ExaBGP runs imports only the standard library.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "bgpflat"

CORE_FORBIDDEN = {
    "kubernetes",
    "yaml",
    "rich",
    "exabgp",
    "subprocess",
    "socket",
    "os",
    "shutil",
    "time",
    "tempfile",
    "signal",
    "threading",
    "asyncio",
    "urllib",
    "http",
    "requests",
    "random",
    "pathlib",
    "select",
    "selectors",
}
CORE_ALLOWED_THIRD_PARTY = {"netaddr"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            # "from bgpflat import cli" imports bgpflat.cli
            for alias in node.names:
                found.append(f"{target}.{alias.name}")
    return found


MODULES = sorted(ROOT.rglob("*.py"))


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def bgpflat_imports(path: Path) -> set[str]:
    return {name for name in imports_of(path) if name == "bgpflat" or name.startswith("bgpflat.")}


def test_modules_found() -> None:
    assert any(module_name(p) == "bgpflat.core.net.prefixes" for p in MODULES)


@pytest.mark.parametrize("path", [p for p in MODULES if layer(module_name(p)) == "core"], ids=module_name)
def test_core_is_pure(path: Path) -> None:
    stdlib = set(sys.stdlib_module_names)
    for name in imports_of(path):
        top = name.split(".")[0]
        if top == "bgpflat":
            assert layer(name) in {"core", "errors"} or name == "bgpflat", f"{module_name(path)} imports {name}"
            continue
        assert top not in CORE_FORBIDDEN, f"{module_name(path)} imports {name}: the core does no I/O"
        assert top in stdlib or top in CORE_ALLOWED_THIRD_PARTY or top == "__future__", (
            f"{module_name(path)} imports third-party {name}; the core may use only the stdlib and netaddr"
        )


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_only_cli_imports_cli(path: Path) -> None:
    name = module_name(path)
    if layer(name) in {"cli", "__main__"}:
        return
    for imported in bgpflat_imports(path):
        assert layer(imported) != "cli", f"{name} imports {imported}: nothing below the CLI may import it"


@pytest.mark.parametrize("path", [p for p in MODULES if layer(module_name(p)) == "adapters"], ids=module_name)
def test_adapters_are_independent(path: Path) -> None:
    name = module_name(path)
    own = adapter(name)
    for imported in bgpflat_imports(path):
        if layer(imported) == "adapters":
            assert adapter(imported) in {own, ""}, f"{name} imports another adapter {imported}"
        assert layer(imported) in {"core", "errors", "adapters", ""}, f"{name} imports {imported}"


def adapter(name: str) -> str:
    """``files`` for ``bgpflat.adapters.files``, ``kube`` for ``bgpflat.adapters.kube.client``."""
    parts = name.split(".")
    return parts[2] if len(parts) > 2 else ""


KUBE_LIBRARIES = {"kubernetes", "urllib3"}


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_only_the_kube_adapter_uses_the_kubernetes_client(path: Path) -> None:
    """One way to reach Kubernetes: its library, and its exceptions, stay inside the adapter."""
    name = module_name(path)
    if name.startswith("bgpflat.adapters.kube"):
        return
    for imported in imports_of(path):
        assert imported.split(".")[0] not in KUBE_LIBRARIES, (
            f"{name} imports {imported}; reach the cluster through bgpflat.adapters.kube"
        )


@pytest.mark.parametrize(
    "path", [p for p in MODULES if layer(module_name(p)) in {"workflows", "render"}], ids=module_name
)
def test_workflows_and_render_stay_above_core(path: Path) -> None:
    name = module_name(path)
    for imported in bgpflat_imports(path):
        assert layer(imported) not in {"peer", "lab"}, f"{name} imports {imported}"


def test_collector_is_stdlib_only() -> None:
    collector = ROOT / "peer" / "collector.py"
    if not collector.exists():
        pytest.skip("no collector script yet")
    stdlib = set(sys.stdlib_module_names)
    for name in imports_of(collector):
        top = name.split(".")[0]
        assert top in stdlib or top == "__future__", f"the collector imports {name}; it must run on a bare Python"

"""The wheel carries what ``bgpflat lab`` needs: every scenario under labs/ and every build script
and pin under toolchain/, installed under ``<prefix>/share/bgpflat/`` where the lab finds them.

The wheel is built offline from this checkout (``pip wheel --no-build-isolation``, which needs the
``dev`` extra's setuptools and wheel), or taken from ``$BGPFLAT_WHEEL`` when CI built it already.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bgpflat import __version__
from bgpflat.errors import LabError

REPO = Path(__file__).resolve().parents[2]
DATA = f"bgpflat-{__version__}.data/data/share/bgpflat/"


def _setuptools_can_build() -> bool:
    if importlib.util.find_spec("wheel") is None or importlib.util.find_spec("setuptools") is None:
        return False
    import setuptools

    return int(setuptools.__version__.split(".")[0]) >= 68


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("BGPFLAT_WHEEL")
    if given:
        return Path(given)
    if not _setuptools_can_build():
        pytest.skip("needs setuptools>=68 and wheel (pip install -e '.[dev]'), or $BGPFLAT_WHEEL")
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the tracked files: building in the checkout would leave build/ and *.egg-info there.
    source = out / "src"
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the wheel is built from the tracked files")
    files = listed.stdout
    for name in filter(None, files.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("bgpflat-*.whl")
    return built


def test_the_wheel_carries_the_scenarios_and_the_build_scripts(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "labs", "toolchain"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked
    missing = [name for name in tracked if DATA + name not in names]
    assert not missing, f"the wheel lacks {missing} (add its directory to [tool.setuptools.data-files])"
    assert "bgpflat/py.typed" in names and "bgpflat/__main__.py" in names
    # the package only: no tests, and nothing of setuptools' own build/ directory
    assert not [n for n in names if n.startswith(("tests/", "build/", "toolchain/", "labs/"))]


def test_the_lab_finds_its_data_where_the_wheel_installs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bgpflat.lab import go_build

    installed = tmp_path / "share" / "bgpflat" / "toolchain" / "k8s" / "build.sh"
    installed.parent.mkdir(parents=True)
    installed.write_text("#!/bin/sh\n")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    # Not in the checkout (a name no checkout has): the installed copy is found.
    monkeypatch.setattr(go_build, "__file__", str(tmp_path / "site-packages" / "bgpflat" / "lab" / "go_build.py"))
    assert go_build.shipped_path("toolchain/k8s/build.sh") == installed
    with pytest.raises(LabError, match=r"neither in a source checkout nor in .*share/bgpflat"):
        go_build.checkout_script("toolchain/confd/build.sh", env="BGPFLAT_TEST_NO_SUCH_ENV", what="confd")


def test_a_missing_scenarios_directory_is_said_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bgpflat.lab.controlplane.seed import load_scenario

    monkeypatch.setenv("BGPFLAT_LABS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(LabError, match=r"the scenarios directory .* is missing"):
        load_scenario("calico-bgp")

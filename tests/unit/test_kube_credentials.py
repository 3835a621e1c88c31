"""A kubeconfig with embedded credentials (client-key-data): no copy of the key outlives bgpflat.

The kubernetes package writes embedded credentials to files in the temporary directory and removes
them only at a clean exit; a SIGTERM (a cancelled CI job) or SIGKILL left the client key there.
bgpflat keeps them in memory files instead. The kill is real: a process that loaded the kubeconfig
is killed, and its temporary directory is then empty.
"""

from __future__ import annotations

import base64
import os
import signal
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from bgpflat.adapters.kube.config import load_configuration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    where = tmp_path_factory.mktemp("pki")
    key, cert = where / "key.pem", where / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=bgpflat-test",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    return {"key": key.read_bytes(), "cert": cert.read_bytes()}


@pytest.fixture
def kubeconfig(tmp_path: Path, credentials: dict[str, bytes]) -> Path:
    def data(content: bytes) -> str:
        return base64.b64encode(content).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://127.0.0.1:1", "certificate-authority-data": data(credentials["cert"])},
            }
        ],
        "users": [
            {
                "name": "u",
                "user": {
                    "client-certificate-data": data(credentials["cert"]),
                    "client-key-data": data(credentials["key"]),
                },
            }
        ],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_embedded_credentials_are_usable_and_never_on_disk(
    kubeconfig: Path, credentials: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    configuration, target = load_configuration(kubeconfig=str(kubeconfig), context=None)
    assert target.context == "ctx"
    assert list(temporary.iterdir()) == []
    assert Path(configuration.key_file).read_bytes() == credentials["key"]
    # What urllib3 does with them when it connects.
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    context.load_cert_chain(configuration.cert_file, configuration.key_file)
    # Loading again (another command in the same process) gives working names again.
    again, _ = load_configuration(kubeconfig=str(kubeconfig), context=None)
    assert Path(again.key_file).read_bytes() == credentials["key"]


LOAD_AND_WAIT = """
import sys, time
from bgpflat.adapters.kube.config import load_configuration
load_configuration(kubeconfig=sys.argv[1], context=None)
print("loaded", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_key_copy_is_left_after_a_kill(kubeconfig: Path, tmp_path: Path, sig: signal.Signals) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", LOAD_AND_WAIT, str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"loaded\n"
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == -sig
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(temporary.rglob("*")) == []

"""Certificates for the local control plane, made with the openssl command line.

One throw-away CA signs the apiserver's serving certificate (SAN 127.0.0.1 and localhost, so
clients verify it normally instead of skipping verification) and an admin client certificate in
``system:masters`` (the identity envtest uses: RBAC lets it do anything). A separate key signs
service-account tokens. EC P-256 keys: generating them is instant, unlike RSA.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bgpflat.errors import LabError


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """Paths of every credential file the control plane and its clients use."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    front_proxy_ca_cert: Path
    front_proxy_client_cert: Path
    front_proxy_client_key: Path
    calico_apiserver_cert: Path
    calico_apiserver_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LabError("openssl is needed to make the control plane's certificates (apt-get install openssl)")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def _key(name: str, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=cwd)


def _signed(*, name: str, subject: str, extensions: str, cwd: Path, ca: str = "ca") -> None:
    _key(f"{name}.key", cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-sha256",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=cwd,
    )
    (cwd / f"{name}.csr").unlink()
    (cwd / f"{name}.ext").unlink()


def make_ca(directory: Path, *, subject: str) -> None:
    """A fresh self-signed CA, ``ca.key`` and ``ca.crt``, in ``directory`` (made 0700)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    _key("ca.key", directory)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", subject, "-days", "365", "-sha256", "-out", "ca.crt",
             cwd=directory)  # fmt: skip


def issue(directory: Path, *, name: str, subject: str, extensions: str) -> None:
    """``<name>.key`` and ``<name>.crt`` signed by the CA in ``directory``, with these X.509 extensions."""
    _signed(name=name, subject=subject, extensions=extensions, cwd=directory)


def make_credentials(
    directory: Path, *, apiserver_ips: tuple[str, ...] = (), calico_api: tuple[str, str] | None = None
) -> Credentials:
    """Write a fresh CA, serving, admin and service-account key pair into ``directory``.

    ``apiserver_ips``: more addresses the kube-apiserver's certificate names. ``calico_api``: the
    Calico API server's (address, service DNS name): then also its serving certificate and the
    front-proxy CA and client certificate with which kube-apiserver's aggregator calls it.
    """
    make_ca(directory, subject="/CN=bgpflat-lab-ca")
    _signed(
        name="apiserver",
        subject="/CN=kube-apiserver",
        cwd=directory,
        extensions=(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc" + "".join(f",IP:{ip}" for ip in apiserver_ips) + "\n"
        ),
    )
    if calico_api is not None:
        address, dns_name = calico_api
        _signed(
            name="calico-apiserver",
            subject="/CN=calico-apiserver",
            cwd=directory,
            extensions=(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage=serverAuth\nsubjectAltName=IP:{address},DNS:{dns_name}\n"
            ),
        )
        # The aggregator proves who it proxies for with a client certificate of its own CA, which
        # the extension API server trusts for the X-Remote-User/Group headers only.
        _key("front-proxy-ca.key", directory)
        _openssl(
            "req", "-x509", "-new", "-key", "front-proxy-ca.key", "-subj", "/CN=bgpflat-front-proxy-ca",
            "-days", "365", "-sha256", "-out", "front-proxy-ca.crt", cwd=directory,
        )  # fmt: skip
        _signed(
            name="front-proxy-client",
            subject="/CN=front-proxy-client",
            cwd=directory,
            extensions="basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
            ca="front-proxy-ca",
        )
    _signed(
        name="admin",
        subject="/O=system:masters/CN=bgpflat-admin",
        cwd=directory,
        extensions="basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    _key("sa.key", directory)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
    return credentials_in(directory)


def credentials_in(directory: Path) -> Credentials:
    """The credentials ``make_credentials`` wrote earlier into ``directory``."""
    return Credentials(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
        front_proxy_ca_cert=directory / "front-proxy-ca.crt",
        front_proxy_client_cert=directory / "front-proxy-client.crt",
        front_proxy_client_key=directory / "front-proxy-client.key",
        calico_apiserver_cert=directory / "calico-apiserver.crt",
        calico_apiserver_key=directory / "calico-apiserver.key",
    )

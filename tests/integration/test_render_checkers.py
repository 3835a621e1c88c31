"""Every ``bgpflat render`` output that a real tool can check, checked by that tool.

The outputs are the golden cases of ``tests/unit/test_office_golden.py`` (scenarios A–D plus the
ToR option and iBGP variants). Checkers and the Debian packages CI installs for them:

===========================================  ======================  ====================================
checker                                      package                 what it reads
===========================================  ======================  ====================================
``vtysh --dryrun -f``                        frr                     ToR configs, static routes for FRR
``bird -p -c`` / ``bird6 -p -c``             bird (BIRD 1.6)         ToR configs for BIRD (IPv4 / IPv6)
``nft -c -f``                                nftables                edge-node masquerade (nftables)
``iptables-restore --test``                  iptables                edge-node masquerade (iptables)
``ip -batch``                                iproute2                Linux static routes (netns)
``sysctl -p``                                procps                  the forwarding sysctl (netns)
``dnsmasq --test -C``                        dnsmasq (dnsmasq-base)  office DNS forwarding, dnsmasq
``named-checkconf``                          bind9utils/bind9-utils  office DNS forwarding, BIND
``unbound-checkconf``                        unbound                 office DNS forwarding, Unbound
``openvpn --config FILE --show-ciphers``     openvpn                 VPN server config, client profile
``coredns -conf FILE`` (must start)          built with go install   edge-node Corefile (skipped if absent)
===========================================  ======================  ====================================

Tools that need root (nft, iptables-restore, ip, sysctl) run inside a network namespace made for
this module and deleted after it, so the host's rules and routes are never touched. Each checker
is also shown a broken copy and must refuse it, so a checker that accepts anything cannot pass.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bgpflat.lab.controlplane.server import ControlPlane

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_office_golden import CASES

pytestmark = pytest.mark.integration


def _need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        reason = f"needs {', '.join(missing)} on PATH"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (.ci/run installs it)")
        pytest.skip(reason)


def _run(argv: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    """A throwaway network namespace (unique name, deleted afterwards)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("needs root for network namespaces")
        pytest.skip("needs root for network namespaces")
    _need("ip")
    name = f"bgpflat-render-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _cases(suffix: str) -> list[str]:
    return sorted(name for name in CASES if name.endswith(suffix))


def _check(
    checker: Callable[[Path], subprocess.CompletedProcess[str]], tmp_path: Path, name: str, text: str | None = None
) -> None:
    """The rendered file must pass; a copy with a broken last line must not."""
    text = CASES[name]() if text is None else text
    good = checker(_write(tmp_path, name, text))
    assert good.returncode == 0, f"{name} refused:\n{good.stdout}{good.stderr}\n---\n{text}"
    bad = checker(_write(tmp_path, "broken-" + name, text + "bgpflat-broken-line 999.1.1.1/99 {\n"))
    assert bad.returncode != 0, f"the checker accepted a broken copy of {name}: it proves nothing"


# --- routers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*_cases(".frr")])
def test_frr_accepts(name: str, tmp_path: Path) -> None:
    _need("vtysh")
    _check(lambda path: _run(["vtysh", "--dryrun", "-f", str(path)]), tmp_path, name)


@pytest.mark.parametrize("name", _cases(".bird"))
def test_bird_accepts(name: str, tmp_path: Path) -> None:
    _need("bird")
    _check(lambda path: _run(["bird", "-p", "-c", str(path)]), tmp_path, name)


@pytest.mark.parametrize("name", _cases(".bird6"))
def test_bird6_accepts(name: str, tmp_path: Path) -> None:
    _need("bird6")
    _check(lambda path: _run(["bird6", "-p", "-c", str(path)]), tmp_path, name)


# --- edge node -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _cases(".nftables"))
def test_nft_accepts(name: str, tmp_path: Path, netns: str) -> None:
    _need("nft")
    _check(lambda path: _run(["ip", "netns", "exec", netns, "nft", "-c", "-f", str(path)]), tmp_path, name)


@pytest.mark.parametrize("name", _cases(".iptables"))
def test_iptables_restore_accepts(name: str, tmp_path: Path, netns: str) -> None:
    _need("iptables-restore")

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", netns, "iptables-restore", "--test"], stdin=path.read_text())

    _check(check, tmp_path, name)


@pytest.mark.parametrize("name", _cases(".sysctl"))
def test_sysctl_file_applies_in_a_namespace(name: str, tmp_path: Path, netns: str) -> None:
    _need("sysctl")
    path = _write(tmp_path, name, CASES[name]())
    result = _run(["ip", "netns", "exec", netns, "sysctl", "-p", str(path)])
    assert result.returncode == 0, result.stderr
    value = _run(["ip", "netns", "exec", netns, "sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip()
    assert value == "1"


def _linux_routes(text: str) -> str:
    """``ip route replace …`` lines as an ``ip -batch`` script."""
    return "".join(line[3:] + "\n" for line in text.splitlines() if line.startswith("ip "))


@pytest.mark.parametrize("name", ["static-routes-a.linux", "static-routes-c.linux", "vpn-b.lan"])
def test_linux_routes_install_in_a_namespace(name: str, netns: str) -> None:
    text = CASES[name]()
    via = text.split(" via ")[-1].split()[0]
    # A link that holds the gateway's subnet, so the kernel accepts the next hop.
    link = f"chk{secrets.token_hex(3)}"
    subprocess.run(["ip", "-n", netns, "link", "add", link, "type", "veth", "peer", "name", f"{link}p"], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "addr", "add", f"{via}/32", "dev", link], check=True)
        subprocess.run(["ip", "-n", netns, "link", "set", link, "up"], check=True)
        subprocess.run(["ip", "-n", netns, "route", "add", f"{via}/32", "dev", link, "scope", "link"], check=False)
        result = _run(["ip", "-n", netns, "-batch", "-"], stdin=_linux_routes(text))
        assert result.returncode == 0, result.stderr
        table = _run(["ip", "-n", netns, "route", "show"]).stdout
        for line in _linux_routes(text).splitlines():
            prefix = line.split()[2]
            assert f"{prefix} via {via}" in table, table
    finally:
        subprocess.run(["ip", "-n", netns, "link", "del", link], check=False)


# --- DNS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _cases(".dnsmasq"))
def test_dnsmasq_accepts(name: str, tmp_path: Path) -> None:
    _need("dnsmasq")
    _check(lambda path: _run(["dnsmasq", "--test", "-C", str(path)]), tmp_path, name)


@pytest.mark.parametrize("name", _cases(".bind"))
def test_named_checkconf_accepts(name: str, tmp_path: Path) -> None:
    _need("named-checkconf")
    _check(lambda path: _run(["named-checkconf", str(path)]), tmp_path, name)


@pytest.mark.parametrize("name", _cases(".unbound"))
def test_unbound_checkconf_accepts(name: str, tmp_path: Path) -> None:
    _need("unbound-checkconf")
    _check(lambda path: _run(["unbound-checkconf", str(path)]), tmp_path, name)


# Built with: GOBIN=~/.cache/bgpflat/coredns/bin go install github.com/coredns/coredns@v1.12.4
COREDNS = shutil.which("coredns") or shutil.which("coredns", path=str(Path.home() / ".cache/bgpflat/coredns/bin"))


def _coredns(netns: str, path: Path) -> subprocess.CompletedProcess[str]:
    """CoreDNS has no check-only mode: start it inside the namespace; running after 3 s is a pass."""
    assert COREDNS is not None
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, COREDNS, "-conf", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=3)
        return subprocess.CompletedProcess(proc.args, proc.returncode or 1, out, "")
    except subprocess.TimeoutExpired:
        proc.terminate()  # by PID: ip netns exec replaced itself with coredns
        out, _ = proc.communicate(timeout=10)
        return subprocess.CompletedProcess(proc.args, 0, out, "")


@pytest.mark.parametrize("name", _cases(".coredns"))
def test_coredns_starts_with_the_corefile(name: str, tmp_path: Path, netns: str) -> None:
    if COREDNS is None:
        pytest.skip("CoreDNS is not built here; the Corefile is covered by its golden file")
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    # The edge node's (or the office resolver's) address does not exist in the namespace; listen on loopback instead.
    text = re.sub(r"(?m)^\tbind \S+$", "\tbind 127.0.0.1", CASES[name]())
    _check(lambda path: _coredns(netns, path), tmp_path, name, text)


# --- VPN -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vpn-b.server", "vpn-b.client"])
def test_openvpn_parses_the_server_config_and_the_client_profile(name: str, tmp_path: Path) -> None:
    _need("openvpn")
    # OpenVPN checks that the profile's up/down script exists: the rendered one, beside it.
    script = _write(tmp_path, "vpn-dns", CASES["vpn-b.client-dns"]())
    script.chmod(0o755)
    # --show-ciphers makes OpenVPN exit right after reading every option of the config file.
    _check(
        lambda path: _run(["openvpn", "--cd", str(tmp_path), "--config", str(path), "--show-ciphers"]), tmp_path, name
    )


def test_the_client_dns_script_is_valid_sh(tmp_path: Path) -> None:
    # What it does is proven in the openvpn lab (tests/integration/test_lab_openvpn.py).
    text = CASES["vpn-b.client-dns"]()
    good = _run(["sh", "-n", str(_write(tmp_path, "vpn-dns", text))])
    assert good.returncode == 0, good.stderr
    bad = _run(["sh", "-n", str(_write(tmp_path, "broken-vpn-dns", text + "case x in\n"))])
    assert bad.returncode != 0


# --- live cluster --------------------------------------------------------------------------------


def test_render_from_a_live_cluster_equals_render_from_its_snapshot(
    seed_scenario: Callable[..., object], kube_v1: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scenario D seeded into a real API server: the same ToR config as from labs/calico-bgp/cluster.yaml."""
    from bgpflat.cli import main

    seed_scenario("calico-bgp")
    lab = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"
    kubeconfig = str(kube_v1.kubeconfig)
    assert main(["render", "tor", "--vendor", "frr", "-f", str(lab / "bgpflat.yaml"), "--kubeconfig", kubeconfig]) == 0
    live = capsys.readouterr().out
    assert live == CASES["tor-d.frr"]()
    assert main(["render", "dns", "--unbound", "--kubeconfig", kubeconfig]) == 0
    assert "forward-addr: 10.233.0.3" in capsys.readouterr().out  # kube-dns read from the API server

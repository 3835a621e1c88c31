"""``verify --source bmp:DIR --router IP``: what a real router received (pre) or kept (post)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_advertise import ADDR, BLOCK, base, expect

from bgpflat.bmp.state import StateDir
from bgpflat.cli import main
from bgpflat.daemon.state import FORMAT_VERSION

RECORDS = expect(base(mesh=False)).table.to_records()
ROUTER = "192.0.2.1"


def station_snapshot(
    tmp_path: Path,
    *,
    kept: list[dict[str, Any]],
    state: str = "up",
    best: list[dict[str, Any]] | None = None,
    best_complete: bool = True,
) -> Path:
    """A station's snapshot of ROUTER: every expected route pre-policy, ``kept`` post-policy and,
    given ``best``, a Loc-RIB instance (peer type 3, as GoBGP streams it) holding those."""

    def tag(records: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
        return [{**r, "router": ROUTER, "peer": r["session"], "policy": policy} for r in records]

    complete = {"paths": 1, "prefixes": 1, "eor": ["ipv4 unicast"], "complete": True}
    peers = [
        {
            "peer": address,
            "peer_as": 64512,
            "peer_type": 0,
            "state": "up",
            "tables": {"pre": complete, "post": complete},
        }
        for address in ADDR.values()
    ]
    if best is not None:
        loc = {"paths": len(best), "prefixes": len(best), "eor": [], "complete": best_complete}
        peers.append({"peer": "0.0.0.0", "peer_as": 65000, "peer_type": 3, "state": "up", "tables": {"loc-rib": loc}})
    state_dir = StateDir(tmp_path / "bmp")
    state_dir.create()
    state_dir.write_snapshot(
        {
            "format_version": FORMAT_VERSION,
            "routers": [
                {"router": ROUTER, "state": state, "reason": "the router closed the connection", "peers": peers}
            ],
            "routes": tag(RECORDS, "pre") + tag(kept, "post") + tag(best or [], "loc-rib"),
        }
    )
    return state_dir.path


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(base(mesh=False)))
    return path


def verify(capsys: pytest.CaptureFixture[str], snapshot: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code = main(
        ["--color", "never", "verify", "--peer", "10.0.0.254", "--snapshot", str(snapshot), "-o", "json", *extra]
    )
    out, err = capsys.readouterr()
    return code, json.loads(out) if out else {}, err


def test_a_route_sent_but_not_kept_is_filtered_by_the_router(
    capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path
) -> None:
    kept = [r for r in RECORDS if r["session"] != ADDR["c"]]
    station = station_snapshot(tmp_path, kept=kept)
    code, data, _ = verify(capsys, snapshot, "--source", f"bmp:{station}", "--router", ROUTER)
    assert code == 1
    codes = [f["code"] for f in data["diff"]["findings"]]
    assert codes == ["session-nothing-learned", "filtered-by-router"]  # c's only route was refused
    finding = data["diff"]["findings"][1]
    assert (finding["code"], finding["router"], finding["session"], finding["prefix"]) == (
        "filtered-by-router",
        ROUTER,
        ADDR["c"],
        BLOCK["c"],
    )
    assert f"filtered by router {ROUTER} via {ADDR['c']} (c)" in finding["explanation"]
    assert data["source"].endswith(f"snapshot.json router {ROUTER} post-policy")
    # What the nodes sent the router is complete.
    code, data, _ = verify(capsys, snapshot, "--source", f"bmp:{station}", "--router", ROUTER, "--policy", "pre")
    assert (code, data["status"]) == (0, "match")


def test_a_route_never_sent_stays_missing(capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path) -> None:
    station = station_snapshot(tmp_path, kept=RECORDS)
    # Take c's route out of both tables: the node never sent it.
    data = json.loads((station / "snapshot.json").read_text())
    data["routes"] = [r for r in data["routes"] if r["session"] != ADDR["c"]]
    (station / "snapshot.json").write_text(json.dumps(data))
    code, result, _ = verify(capsys, snapshot, "--source", f"bmp:{station}", "--router", ROUTER)
    assert code == 1
    assert [f["code"] for f in result["diff"]["findings"]] == ["session-nothing-learned", "route-missing"]


def test_a_router_without_a_bmp_session_cannot_be_verified(
    capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path
) -> None:
    station = station_snapshot(tmp_path, kept=RECORDS, state="disconnected")
    code, data, err = verify(capsys, snapshot, "--source", f"bmp:{station}", "--router", ROUTER)
    assert (code, data["reason"]) == (2, "bad-input")
    assert f"router {ROUTER} has no BMP session with the station (disconnected" in err
    code, data, err = verify(capsys, snapshot, "--source", f"bmp:{station}", "--router", "192.0.2.9")
    assert code == 2 and f"routers: {ROUTER}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--router", ROUTER], "--router: --router names a router of the BMP station (fix: add --source bmp:DIR)"),
        (["--source", "bmp:x"], "--router: --source bmp:DIR needs the router to verify"),
        (["--source", "gobgp:x", "--router", ROUTER], "--source: unknown source 'gobgp:x'"),
        (["--source", "bmp:x", "--router", "tor"], "--router: 'tor' is not an IP address"),
    ],
)
def test_source_flags_are_checked_first(
    capsys: pytest.CaptureFixture[str], snapshot: Path, argv: list[str], message: str
) -> None:
    code, _, err = verify(capsys, snapshot, *argv)
    assert code == 2 and message in err


def test_loc_rib_is_what_the_router_selected_across_its_peers(
    capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path
) -> None:
    """``--policy loc-rib``: every expected prefix needs a best path that a node was expected to send;
    one that the router's import policy refused is filtered by the router."""
    kept = [r for r in RECORDS if r["session"] != ADDR["c"]]

    def loc_rib(station: Path) -> tuple[int, dict[str, Any]]:
        args = ("--source", f"bmp:{station}", "--router", ROUTER, "--policy", "loc-rib")
        code, data, _ = verify(capsys, snapshot, *args)
        return code, data

    code, data = loc_rib(station_snapshot(tmp_path / "refused", kept=kept, best=kept))
    assert code == 1 and data["source"].endswith(f"router {ROUTER} Loc-RIB")
    failing = [(f["code"], f["session"], f["prefix"]) for f in data["diff"]["findings"] if f["fails"]]
    assert ("filtered-by-router", ADDR["c"], BLOCK["c"]) in failing
    # Kept but not selected (another path won): missing from the Loc-RIB, not filtered.
    code, data = loc_rib(station_snapshot(tmp_path / "not-best", kept=RECORDS, best=kept))
    codes = {f["code"] for f in data["diff"]["findings"] if f["fails"] and f["session"] == ADDR["c"]}
    assert code == 1 and "filtered-by-router" not in codes and "route-missing" in codes
    assert loc_rib(station_snapshot(tmp_path / "all", kept=RECORDS, best=RECORDS))[0] == 0


def test_loc_rib_waits_for_the_routers_loc_rib(
    capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path
) -> None:
    """Each node's session is at End-of-RIB for loc-rib only once the router's Loc-RIB is complete."""
    station = station_snapshot(tmp_path, kept=RECORDS, best=RECORDS, best_complete=False)
    argv = ("--source", f"bmp:{station}", "--router", ROUTER, "--policy", "loc-rib", "--wait", "--timeout", "0.3")
    _, data, _ = verify(capsys, snapshot, *argv, "--interval", "0.1")
    assert (data["status"], data["converged"]) == ("match", False)
    assert any("End-of-RIB not seen" in note for note in data["notes"])


def test_loc_rib_from_a_router_that_streams_none_says_so(
    capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path
) -> None:
    station = station_snapshot(tmp_path, kept=RECORDS)
    code, data, err = verify(capsys, snapshot, "--source", f"bmp:{station}", "--router", ROUTER, "--policy", "loc-rib")
    assert (code, data["reason"]) == (2, "bad-input")
    assert f"router {ROUTER} has sent the BMP station no Loc-RIB" in err

"""The peer's Adj-RIB-In: add-path, flush on down, End-of-RIB per family, stale sweep, noise."""

from __future__ import annotations

from bgpflat.core.exabgp.events import (
    EndOfRibEvent,
    MalformedEvent,
    NegotiatedEvent,
    SessionStateEvent,
    UpdateEvent,
)
from bgpflat.core.exabgp.rib import Rib
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Route, RouteTable

N1, N2 = "10.0.0.1", "10.0.0.2"


def state(peer: str, name: str, reason: str = "") -> SessionStateEvent:
    return SessionStateEvent(peer=peer, local="10.0.0.100", peer_as=64512, local_as=65000, state=name, reason=reason)


def route(prefix: str, peer: str = N1, path_id: int | None = None, hop: str | None = None) -> Route:
    return Route(Prefix.parse(prefix), hop or peer, peer, (64512,), path_id=path_id)


def announce(*routes: Route) -> UpdateEvent:
    return UpdateEvent.from_routes(peer=routes[0].session, announced=routes)


def withdraw(peer: str, *keys: tuple[str, int | None]) -> UpdateEvent:
    return UpdateEvent.from_routes(peer=peer, withdrawn=tuple((Prefix.parse(p), i) for p, i in keys))


def up_rib(*peers: str) -> Rib:
    rib = Rib()
    for peer in peers:
        rib.apply(state(peer, "connected"), now=1)
        rib.apply(state(peer, "up"), now=2)
    return rib


def prefixes(rib: Rib, peer: str | None = None) -> set[tuple[str, str, int | None]]:
    return {(r.session, str(r.prefix), r.path_id) for r in rib.routes() if peer in (None, r.session)}


def test_same_prefix_from_two_nodes_is_two_routes() -> None:
    rib = up_rib(N1, N2)
    rib.apply(announce(route("10.96.0.0/12", N1)), now=3)
    rib.apply(announce(route("10.96.0.0/12", N2)), now=3)
    assert len(rib.table()) == 2


def test_add_path_keeps_paths_apart_and_withdraws_one() -> None:
    rib = up_rib(N1)
    rib.apply(
        announce(route("10.244.0.0/26", path_id=1, hop="10.0.0.1"), route("10.244.0.0/26", path_id=2, hop="10.0.0.9")),
        now=3,
    )
    assert prefixes(rib) == {(N1, "10.244.0.0/26", 1), (N1, "10.244.0.0/26", 2)}
    rib.apply(withdraw(N1, ("10.244.0.0/26", 1)), now=4)
    assert prefixes(rib) == {(N1, "10.244.0.0/26", 2)}


def test_reannounce_replaces_attributes() -> None:
    rib = up_rib(N1)
    rib.apply(announce(route("10.244.0.0/26")), now=3)
    rib.apply(announce(route("10.244.0.0/26")._replace(communities=((64512, 100),))), now=4)
    (only,) = rib.routes()
    assert only.communities == ((64512, 100),)


def test_unknown_withdraws_are_counted_and_harmless() -> None:
    rib = up_rib(N1)
    rib.apply(announce(route("10.244.0.0/26")), now=3)
    rib.apply(withdraw(N1, ("0.0.0.0/0", 5), ("10.244.0.5/32", 6)), now=4)
    view = rib.session(N1)
    assert view is not None and view.unknown_withdraws == 2 and view.paths == 1


def test_down_flushes_only_that_session() -> None:
    rib = up_rib(N1, N2)
    rib.apply(announce(route("10.244.0.0/26", N1)), now=3)
    rib.apply(announce(route("10.244.1.0/26", N2)), now=3)
    notice = rib.apply(state(N1, "down", "closing connection"), now=5)
    assert notice is not None and notice.kind == "down" and notice.detail["flushed"] == 1
    assert prefixes(rib) == {(N2, "10.244.1.0/26", None)}
    view = rib.session(N1)
    assert view is not None and view.state == "down" and view.reason == "closing connection"


def test_end_of_rib_per_family_against_negotiated() -> None:
    rib = Rib()
    rib.apply(state(N1, "connected"), now=1)
    rib.apply(
        NegotiatedEvent(peer=N1, families=("ipv6 unicast", "ipv4 unicast"), add_path_receive=(), hold_time=90), now=1
    )
    assert not rib.receiving_table(now=1, within=300)  # connecting: no table dump yet
    rib.apply(state(N1, "up"), now=2)
    rib.apply(EndOfRibEvent(peer=N1, family="ipv4 unicast"), now=3)
    view = rib.session(N1)
    assert view is not None and not view.eor_complete and dict(view.eor) == {"ipv4 unicast": 3}
    # The peer holds its snapshots back while a dump is under way, for so long at most.
    assert rib.receiving_table(now=3, within=300)
    assert not rib.receiving_table(now=302, within=300)
    rib.apply(EndOfRibEvent(peer=N1, family="ipv6 unicast"), now=4)
    view = rib.session(N1)
    assert view is not None and view.eor_complete
    assert not rib.receiving_table(now=4, within=300)


def test_active_mode_retries_are_one_connecting_state() -> None:
    rib = Rib()
    rib.expect(N1, peer_as=64512, now=0)
    notices = []
    for i in range(20):
        notices.append(rib.apply(state(N1, "connected"), now=i))
        notices.append(rib.apply(state(N1, "down", "closing connection"), now=i + 0.5))
    kinds = [n.kind for n in notices if n is not None]
    assert kinds == ["connecting"]
    view = rib.session(N1)
    assert view is not None and view.state == "connecting" and view.connect_attempts == 20
    assert view.since == 0  # the state has not changed since the first attempt


def test_repeated_down_is_idempotent() -> None:
    rib = up_rib(N1)
    rib.apply(announce(route("10.244.0.0/26")), now=3)
    first = rib.apply(state(N1, "down"), now=4)
    second = rib.apply(state(N1, "down"), now=5)
    assert first is not None and second is None
    assert rib.session(N1).state == "down"  # type: ignore[union-attr]


def test_lost_speaker_keeps_routes_stale_until_end_of_rib_then_sweeps() -> None:
    rib = up_rib(N1)
    rib.apply(announce(route("10.244.0.0/26"), route("10.244.0.64/26"), route("10.96.0.0/12")), now=3)
    notices = rib.speaker_lost(now=4, reason="ExaBGP exited (-9)")
    assert [n.kind for n in notices] == ["down"]
    view = rib.session(N1)
    assert view is not None and view.state == "down" and view.stale and view.paths == 3
    # ExaBGP is back; the neighbor re-sends all but one route, then End-of-RIB.
    rib.apply(state(N1, "connected"), now=5)
    rib.apply(state(N1, "up"), now=6)
    rib.apply(announce(route("10.244.0.0/26"), route("10.96.0.0/12")), now=7)
    assert rib.session(N1).stale  # type: ignore[union-attr]
    notice = rib.apply(EndOfRibEvent(peer=N1, family="ipv4 unicast"), now=8)
    assert notice is not None and notice.detail["swept"] == 1
    assert prefixes(rib) == {(N1, "10.244.0.0/26", None), (N1, "10.96.0.0/12", None)}
    assert not rib.session(N1).stale  # type: ignore[union-attr]


def test_stale_sweep_is_per_family() -> None:
    rib = up_rib(N1)
    rib.apply(announce(route("10.244.0.0/26"), route("fd00:10::/64", hop="fd00::1")), now=3)
    rib.speaker_lost(now=4, reason="gone")
    rib.apply(state(N1, "up"), now=5)
    rib.apply(EndOfRibEvent(peer=N1, family="ipv4 unicast"), now=6)
    assert prefixes(rib) == {(N1, "fd00:10::/64", None)}
    assert rib.session(N1).stale  # type: ignore[union-attr]
    rib.apply(EndOfRibEvent(peer=N1, family="ipv6 unicast"), now=7)
    assert not rib.table()


def test_session_reset_without_down_still_resyncs() -> None:
    # An "up" while routes are held (a down was never reported) resyncs like a restart.
    rib = up_rib(N1)
    rib.apply(announce(route("10.244.0.0/26"), route("10.244.0.64/26")), now=3)
    rib.apply(state(N1, "up"), now=4)
    rib.apply(announce(route("10.244.0.64/26")), now=5)
    rib.apply(EndOfRibEvent(peer=N1, family="ipv4 unicast"), now=6)
    assert prefixes(rib) == {(N1, "10.244.0.64/26", None)}


def test_down_after_speaker_loss_drops_stale_routes() -> None:
    rib = up_rib(N1)
    rib.apply(announce(route("10.244.0.0/26")), now=3)
    rib.speaker_lost(now=4, reason="gone")
    rib.apply(state(N1, "connected"), now=5)
    rib.apply(state(N1, "down", "closing connection"), now=6)
    assert not rib.table()


def test_malformed_is_counted() -> None:
    rib = Rib()
    rib.apply(MalformedEvent(reason="not JSON", line="{"), now=1)
    rib.apply(MalformedEvent(reason="bad community", line="…"), now=2)
    counters = rib.counters()
    assert counters.malformed == 2 and counters.last_malformed.startswith("bad community")


def test_expected_neighbors_are_listed_idle() -> None:
    rib = Rib()
    rib.expect(N2, peer_as=64512, now=0)
    rib.expect(N1, peer_as=64513, now=0)
    assert [(s.peer, s.state, s.peer_as) for s in rib.sessions()] == [(N1, "idle", 64513), (N2, "idle", 64512)]


def test_session_view_round_trips_through_dict() -> None:
    rib = up_rib(N1)
    rib.apply(EndOfRibEvent(peer=N1, family="ipv4 unicast"), now=3)
    view = rib.session(N1)
    assert view is not None
    from bgpflat.core.exabgp.rib import SessionView

    assert SessionView.from_dict(view.to_dict()) == view


def test_all_down_on_stop_leaves_nothing() -> None:
    rib = up_rib(N1, N2)
    rib.apply(announce(route("10.244.0.0/26", N1)), now=3)
    rib.speaker_lost(now=4, reason="gone")  # stale routes are dropped too
    notices = rib.all_down(now=5, reason="bgpflat peer stopped")
    assert [n.peer for n in notices] == [N1]
    assert not rib.table() and {s.state for s in rib.sessions()} == {"down"}


def test_counts_paths_and_prefixes_apart() -> None:
    rib = up_rib(N1)
    rib.apply(
        announce(
            route("10.244.0.0/26", path_id=1), route("10.244.0.0/26", path_id=2), route("10.96.0.0/12", path_id=1)
        ),
        now=3,
    )
    rib.apply(announce(route("10.244.0.0/26", path_id=2)), now=4)  # a replacement, not a new path
    view = rib.session(N1)
    assert view is not None and (view.paths, view.prefixes) == (3, 2)
    rib.apply(withdraw(N1, ("10.244.0.0/26", 1), ("10.244.0.0/26", 2)), now=5)
    view = rib.session(N1)
    assert view is not None and (view.paths, view.prefixes) == (1, 1)


def test_prefix_count_follows_announces_and_withdraws_with_add_path() -> None:
    rib = up_rib(N1)

    def counts() -> tuple[int, int]:
        view = rib.session(N1)
        assert view is not None
        return view.paths, view.prefixes

    rib.apply(announce(*(route(f"10.0.{i}.0/24", path_id=3) for i in range(5))), now=3)
    assert counts() == (5, 5)
    # a second path for known prefixes, a re-announcement and a new prefix, in one update
    rib.apply(announce(route("10.0.0.0/24", path_id=2), route("10.0.1.0/24", path_id=3), route("10.1.0.0/16")), now=4)
    assert counts() == (7, 6)
    rib.apply(withdraw(N1, ("10.0.0.0/24", 3)), now=5)
    assert counts() == (6, 6)
    rib.apply(withdraw(N1, ("10.0.0.0/24", 2)), now=6)
    assert counts() == (5, 5)
    rib.apply(announce(route("10.0.0.0/24", path_id=2)), now=7)
    assert counts() == (6, 6)
    assert counts()[1] == len({r.prefix for r in rib.routes()})


def test_stored_paths_read_back_as_the_announced_routes() -> None:
    rib = up_rib(N1, N2)
    sent = [
        route("10.244.0.0/26", path_id=1, hop="10.0.0.9")._replace(communities=((64512, 1),)),
        route("10.244.0.0/26", path_id=2),
        route("fd00:10::/64", path_id=1, hop="fd00::1"),
    ]
    rib.apply(announce(*sent), now=3)
    rib.apply(announce(route("10.244.0.0/26", N2)), now=3)
    assert sorted(rib.routes()) == sorted([*sent, route("10.244.0.0/26", N2)])
    assert rib.table() == RouteTable([*sent, route("10.244.0.0/26", N2)])

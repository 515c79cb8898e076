"""Aliases: atomic, recorded moves; exactly one of two racing movers wins; rollback."""

import threading

import pytest

from tests.registry.test_registry import make_adapter_folder
from wow_ray.errors import RegistryError
from wow_ray.registry import AliasConflict, EntryKind, Registry

A = EntryKind.ADAPTER


@pytest.fixture
def registry(tmp_path):
    registry = Registry(str(tmp_path / "storage"))
    folder = make_adapter_folder(tmp_path / "a")
    for _ in range(3):
        registry.register(A, "fd-response", folder, source="test", base_model="base:v1")
    return registry


def test_an_alias_points_at_a_version_and_records_each_move(registry):
    aliases = registry.aliases
    assert aliases.current(A, "fd-response", "production") is None
    with pytest.raises(RegistryError, match="no alias 'production'"):
        registry.get(A, "fd-response@production")
    first = aliases.move(A, "fd-response", "production", 1, by="alice", reason="cold start")
    second = aliases.move(A, "fd-response", "production", 2, by="flywheel turn 1",
                          report="fd-eval:v4", reason="better by 0.2")
    assert registry.get(A, "fd-response@production").ref == "fd-response:v2"
    assert registry.get(A, "fd-response").ref == "fd-response:v3"  # bare name: still the newest
    history = aliases.history(A, "fd-response", "production")
    assert history == [first, second]
    assert (second.previous, second.by, second.report, second.seq) == (1, "flywheel turn 1",
                                                                      "fd-eval:v4", 2)
    assert second.moved_at >= first.moved_at
    assert (A, "fd-response", "production") in aliases.names()


def test_a_move_to_a_missing_version_or_bad_alias_is_refused(registry):
    with pytest.raises(RegistryError, match="no version v9"):
        registry.aliases.move(A, "fd-response", "production", 9)
    with pytest.raises(RegistryError, match="not a valid alias"):
        registry.aliases.move(A, "fd-response", "Prod!", 1)
    assert registry.aliases.history(A, "fd-response", "production") == []


def test_a_move_expecting_another_position_is_refused(registry):
    registry.aliases.move(A, "fd-response", "production", 1)
    with pytest.raises(AliasConflict, match="points at v1, not at v2"):
        registry.aliases.move(A, "fd-response", "production", 3, expected=2)
    registry.aliases.move(A, "fd-response", "production", 3, expected=1)
    assert registry.get(A, "fd-response@production").version == 3


def test_of_two_racing_movers_exactly_one_wins(registry, monkeypatch):
    """Both read the same state, then both write: the compare-and-set lets one through."""
    aliases = registry.aliases
    aliases.move(A, "fd-response", "production", 1)
    barrier = threading.Barrier(2)
    real_current = type(aliases).current
    waited: set[int] = set()

    def current_then_wait(self, *args):
        found = real_current(self, *args)
        me = threading.get_ident()
        if threading.current_thread() is not threading.main_thread() and me not in waited:
            waited.add(me)
            barrier.wait(timeout=5)  # both movers have read before either writes
        return found

    monkeypatch.setattr(type(aliases), "current", current_then_wait)
    outcomes: dict[int, object] = {}

    def mover(version):
        try:
            outcomes[version] = aliases.move(A, "fd-response", "production", version)
        except AliasConflict as exc:
            outcomes[version] = exc

    threads = [threading.Thread(target=mover, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    wins = [v for v, o in outcomes.items() if not isinstance(o, Exception)]
    assert len(wins) == 1, outcomes
    assert registry.get(A, "fd-response@production").version == wins[0]
    assert len(aliases.history(A, "fd-response", "production")) == 2


def test_rollback_moves_the_alias_back_and_is_recorded(registry):
    aliases = registry.aliases
    aliases.move(A, "fd-response", "production", 1)
    aliases.move(A, "fd-response", "production", 3, report="fd-eval:v2")
    back = aliases.rollback(A, "fd-response", "production", by="bob", reason="complaints")
    assert registry.get(A, "fd-response@production").version == 1
    assert (back.rollback_of, back.previous, back.by, back.reason) == (2, 3, "bob", "complaints")
    assert [m.version for m in aliases.history(A, "fd-response", "production")] == [1, 3, 1]


def test_rollback_without_an_earlier_version_is_refused(registry):
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.aliases.rollback(A, "fd-response", "production")
    registry.aliases.move(A, "fd-response", "production", 1)
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.aliases.rollback(A, "fd-response", "production")

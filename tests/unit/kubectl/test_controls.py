"""What a control did, told from the history before and after it (pure parts of the controls)."""

from __future__ import annotations

from hal9_migration.kubectl.commands import new_entries
from hal9_migration.kubectl.summary import controls_blocked
from hal9_migration.models import Condition, Hal9MigrationStatus, HistoryEntry


def entry(reason: str, actor: str = "alice", time: str = "2026-11-27T10:00:00Z") -> HistoryEntry:
    return HistoryEntry(time=time, reason=reason, actor=actor)


def test_two_equal_entries_in_the_same_second_are_both_seen() -> None:
    before = [entry("Started", "operator"), entry("PromoteIgnored")]
    after = [*before, entry("PromoteIgnored")]
    assert new_entries(before, after) == [entry("PromoteIgnored")]


def test_nothing_new_is_nothing() -> None:
    before = [entry("Started", "operator"), entry("Paused")]
    assert new_entries(before, list(before)) == []


def test_history_trimmed_to_its_last_100_still_gives_the_new_entries() -> None:
    before = [entry("Advanced", "operator", f"2026-11-27T10:{i // 60:02d}:{i % 60:02d}Z") for i in range(100)]
    added = [entry("Promoted"), entry("Advanced", "operator", "2026-11-27T11:00:00Z")]
    after = (before + added)[-100:]
    assert new_entries(before, after) == added


def test_an_empty_history_before_means_all_is_new() -> None:
    assert new_entries([], [entry("Paused")]) == [entry("Paused")]


def stalled(reason: str) -> Hal9MigrationStatus:
    return Hal9MigrationStatus(
        conditions=[
            Condition(type="Stalled", status="True", reason=reason, message="why", last_transition_time="x")
        ]
    )


def test_controls_wait_for_a_readable_spec_and_route_not_for_a_stop_they_can_end() -> None:
    blocked = controls_blocked(stalled("RouteNotFound"))
    assert blocked is not None and "RouteNotFound: why" in blocked
    assert controls_blocked(stalled("InvalidSpec")) is not None
    assert controls_blocked(stalled("Aborted")) is None  # retry ends it: the control must go through
    assert controls_blocked(Hal9MigrationStatus()) is None

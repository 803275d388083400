from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hal9_migration import conditions
from hal9_migration.conditions import Desired
from hal9_migration.crd import AWAITING_OPERATOR_STATUS
from hal9_migration.models import Hal9MigrationStatus

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_first_visit_stamps_every_condition() -> None:
    out = conditions.apply([], [Desired("Ready", "False", "ReferenceNotFound", "x")], 3, T0)
    assert [(c.type, c.status, c.reason, c.last_transition_time, c.observed_generation) for c in out] == [
        ("Ready", "False", "ReferenceNotFound", "2026-11-25T12:00:00Z", 3)
    ]


def test_transition_time_moves_only_when_status_flips() -> None:
    first = conditions.apply([], [Desired("Ready", "False", "A"), Desired("Stalled", "True", "A")], 1, T0)
    second = conditions.apply(
        first, [Desired("Ready", "False", "B", "new"), Desired("Stalled", "False", "C")], 2, T1
    )
    by_type = {c.type: c for c in second}
    ready, stalled = by_type["Ready"], by_type["Stalled"]
    assert (ready.last_transition_time, ready.reason, ready.message) == ("2026-11-25T12:00:00Z", "B", "new")
    assert stalled.last_transition_time == "2026-11-25T12:05:00Z"
    assert {c.observed_generation for c in second} == {2}


def test_unchanged_pass_is_identical() -> None:
    wanted = [Desired("Ready", "True", "Ok"), Desired("Paused", "False", "NotPaused")]
    first = conditions.apply([], wanted, 1, T0)
    assert conditions.apply(first, wanted, 1, T1) == first


def test_order_is_stable_and_unknown_types_are_kept() -> None:
    other = conditions.apply([], [Desired("ThirdParty", "True", "X")], 1, T0)
    out = conditions.apply(other, [Desired("Paused", "False", "N"), Desired("Ready", "True", "Ok")], 1, T0)
    assert [c.type for c in out] == ["Ready", "Paused", "ThirdParty"]


def test_transitions_report_status_or_reason_changes() -> None:
    before = conditions.apply([], [Desired("Ready", "False", "A"), Desired("Stalled", "True", "A")], 1, T0)
    after = conditions.apply(
        before, [Desired("Ready", "False", "B"), Desired("Stalled", "True", "A", "m")], 1, T1
    )
    assert [c.type for c in conditions.transitions(before, after)] == ["Ready"]


def test_the_placeholder_of_the_default_status_gets_a_real_time() -> None:
    # The CRD's default status shows Reconciling=True since 1970 until an operator writes status; a
    # first pass that keeps Reconciling True must not inherit that time.
    [placeholder] = Hal9MigrationStatus.model_validate(AWAITING_OPERATOR_STATUS).conditions
    assert placeholder.reason == conditions.AWAITING_OPERATOR
    out = conditions.apply([placeholder], [Desired("Reconciling", "True", "Progressing", "moving")], 1, T0)
    assert [(c.status, c.reason, c.last_transition_time) for c in out] == [
        ("True", "Progressing", "2026-11-25T12:00:00Z")
    ]
    assert conditions.apply(out, [Desired("Reconciling", "True", "Progressing", "moving")], 1, T1) == out

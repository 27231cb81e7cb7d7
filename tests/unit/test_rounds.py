"""The round state machine, driven with an explicit clock."""

from __future__ import annotations

import itertools
import math

import pytest

from cohort.domain.errors import Conflict, Forbidden, NotFound
from cohort.domain.training import RoundPolicy
from cohort.federated.rounds import (
    MAX_RETRY_AFTER_SECONDS,
    Assignment,
    Outcome,
    Rejection,
    RoundState,
)

OPENED = 1_000.0
DEADLINE_SECONDS = 60.0
DEADLINE = OPENED + DEADLINE_SECONDS


def _round(min_reports: int = 2, max_reports: int = 3, cohort_size: int = 4) -> RoundState:
    policy = RoundPolicy(min_reports, max_reports, cohort_size, DEADLINE_SECONDS)
    return RoundState(number=1, attempt=1, policy=policy, opened_at=OPENED)


def _keys():
    counter = itertools.count()
    return lambda: f"key-{next(counter)}"


def _admit(state: RoundState, device_id: str, now: float = OPENED, keys=None) -> Assignment:
    decision = state.assign(device_id, now, keys or _keys())
    assert isinstance(decision, Assignment), decision
    return decision


def _report(state: RoundState, device_id: str, now: float = OPENED + 1) -> None:
    key = state.assignments[device_id]
    assert state.check_report(device_id, key, now) is True
    state.record_report(key)


def _assert_rejected(decision: Assignment | Rejection, reason: str) -> None:
    assert isinstance(decision, Rejection)
    assert reason in decision.reason
    assert 0 < decision.retry_after <= MAX_RETRY_AFTER_SECONDS


# -- admitting devices -------------------------------------------------------------------


def test_devices_are_admitted_until_the_cohort_is_full_then_rejected() -> None:
    # Given a round with a cohort of 4
    state, keys = _round(cohort_size=4), _keys()

    # When 4 devices ask, each gets its own slot ending at the deadline
    assignments = [_admit(state, f"device-{i}", OPENED + i, keys) for i in range(4)]
    assert len({a.request_key for a in assignments}) == 4
    assert all(a.deadline == DEADLINE for a in assignments)

    # Then a fifth device is told to come back soon
    _assert_rejected(state.assign("device-4", OPENED + 5, keys), "cohort is full")


@pytest.mark.parametrize(
    "now",
    [OPENED, OPENED + 30, DEADLINE - 0.4, DEADLINE - 0.001],
    ids=["at-open", "mid-round", "just-before-deadline", "a-moment-before-deadline"],
)
def test_retry_after_is_positive_and_bounded_whenever_the_cohort_is_full(now: float) -> None:
    state = _round(min_reports=1, max_reports=1, cohort_size=1)
    _admit(state, "device-a")

    _assert_rejected(state.assign("device-b", now, _keys()), "cohort is full")


def test_a_device_asking_twice_gets_the_same_slot_without_using_another() -> None:
    # Given a device holding a slot in a round with a cohort of 2
    state, keys = _round(min_reports=1, max_reports=2, cohort_size=2), _keys()
    first = _admit(state, "device-a", OPENED, keys)

    # When it asks again later
    second = _admit(state, "device-a", OPENED + 10, keys)

    # Then it gets the same key, and the other slot is still free for someone else
    assert second == first
    _admit(state, "device-b", OPENED + 11, keys)
    _assert_rejected(state.assign("device-c", OPENED + 12, keys), "cohort is full")


def test_a_device_that_has_reported_is_rejected_for_the_rest_of_the_round() -> None:
    # Given a device that has reported
    state = _round()
    _admit(state, "device-a")
    _report(state, "device-a")

    # When it asks again at any time before the deadline, it is rejected
    for now in (OPENED + 2, OPENED + 30, DEADLINE - 1):
        _assert_rejected(state.assign("device-a", now, _keys()), "reported")


@pytest.mark.parametrize("after", [0.0, 0.001, 1.0, 3_600.0])
def test_a_new_device_asking_at_or_after_the_deadline_is_rejected(after: float) -> None:
    state = _round()

    _assert_rejected(state.assign("late-device", DEADLINE + after, _keys()), "deadline")
    assert "late-device" not in state.assignments


# -- reports ---------------------------------------------------------------------------


def test_a_report_is_accepted_once_then_seen_as_a_duplicate() -> None:
    # Given an admitted device
    state = _round()
    key = _admit(state, "device-a").request_key

    # When it reports, the report may be taken
    assert state.check_report("device-a", key, OPENED + 5) is True
    state.record_report(key)

    # Then a repeat of the same report is a duplicate, before or after the deadline
    assert state.check_report("device-a", key, OPENED + 6) is False
    assert state.check_report("device-a", key, DEADLINE + 10) is False


def test_a_report_with_an_unknown_key_is_not_found() -> None:
    state = _round()
    _admit(state, "device-a")

    with pytest.raises(NotFound) as caught:
        state.check_report("device-a", "key-from-an-earlier-attempt", OPENED + 1)
    assert caught.value.status_code == 404


def test_a_report_with_another_devices_key_is_forbidden() -> None:
    # Given two admitted devices
    state, keys = _round(), _keys()
    key_a = _admit(state, "device-a", keys=keys).request_key
    _admit(state, "device-b", keys=keys)

    # When device b reports with device a's key, then it is forbidden and nothing is counted
    with pytest.raises(Forbidden) as caught:
        state.check_report("device-b", key_a, OPENED + 1)
    assert caught.value.status_code == 403
    assert state.reported == set()


@pytest.mark.parametrize("after", [0.0, 0.5, 100.0])
def test_a_first_report_at_or_after_the_deadline_conflicts(after: float) -> None:
    state = _round()
    key = _admit(state, "device-a").request_key

    with pytest.raises(Conflict) as caught:
        state.check_report("device-a", key, DEADLINE + after)
    assert caught.value.status_code == 409


# -- outcomes --------------------------------------------------------------------------


def test_the_round_waits_before_its_quorum() -> None:
    # Given a round needing 2 reports, with one in
    state = _round(min_reports=2, max_reports=3, cohort_size=4)
    _admit(state, "device-a")
    assert state.outcome(OPENED) is Outcome.WAITING
    _report(state, "device-a")

    # Then it keeps waiting up to the deadline
    assert state.outcome(OPENED + 1) is Outcome.WAITING
    assert state.outcome(DEADLINE - 0.001) is Outcome.WAITING


def test_quorum_alone_does_not_close_the_round_before_the_deadline() -> None:
    # Given min_reports met but max_reports not reached
    state, keys = _round(min_reports=2, max_reports=3, cohort_size=4), _keys()
    for device in ("device-a", "device-b"):
        _admit(state, device, keys=keys)
        _report(state, device)

    # Then it keeps waiting for more reports until the deadline
    assert state.outcome(OPENED + 10) is Outcome.WAITING


def test_reaching_max_reports_aggregates_before_the_deadline() -> None:
    # Given max_reports reports in, well before the deadline
    state, keys = _round(min_reports=2, max_reports=3, cohort_size=4), _keys()
    for device in ("device-a", "device-b", "device-c"):
        _admit(state, device, keys=keys)
        _report(state, device)

    # Then the round aggregates straight away
    assert state.outcome(OPENED + 5) is Outcome.AGGREGATE


@pytest.mark.parametrize("reports", [2, 3])
def test_at_the_deadline_a_round_with_its_quorum_aggregates(reports: int) -> None:
    state, keys = _round(min_reports=2, max_reports=3, cohort_size=4), _keys()
    for i in range(reports):
        _admit(state, f"device-{i}", keys=keys)
        _report(state, f"device-{i}")

    assert state.outcome(DEADLINE) is Outcome.AGGREGATE
    assert state.outcome(DEADLINE + 100) is Outcome.AGGREGATE


def test_at_the_deadline_a_round_short_of_its_quorum_fails() -> None:
    state, keys = _round(min_reports=2, max_reports=3, cohort_size=4), _keys()
    for device in ("device-a", "device-b"):
        _admit(state, device, keys=keys)
    _report(state, "device-a")

    assert state.outcome(DEADLINE) is Outcome.FAIL


@pytest.mark.parametrize("admitted", [0, 2])
def test_at_the_deadline_a_round_with_no_reports_at_all_fails(admitted: int) -> None:
    # Given a round nobody reported to (with or without admitted devices)
    state, keys = _round(min_reports=1, max_reports=3, cohort_size=4), _keys()
    for i in range(admitted):
        _admit(state, f"device-{i}", keys=keys)

    # Then it is not left waiting: at and after the deadline it fails
    assert state.outcome(DEADLINE - 0.001) is Outcome.WAITING
    assert state.outcome(DEADLINE) is Outcome.FAIL
    assert state.outcome(DEADLINE + 3_600) is Outcome.FAIL


def test_the_deadline_counts_from_when_the_round_opened() -> None:
    state = _round()

    assert state.deadline == OPENED + DEADLINE_SECONDS


# -- policy validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_reports", "max_reports", "cohort_size", "deadline"),
    [
        pytest.param(0, 1, 1, 10.0, id="no-quorum"),
        pytest.param(3, 2, 4, 10.0, id="min-above-max"),
        pytest.param(1, 5, 4, 10.0, id="max-above-cohort"),
        pytest.param(1, 1, 1, 0.0, id="zero-deadline"),
        pytest.param(1, 1, 1, -5.0, id="negative-deadline"),
    ],
)
def test_an_inconsistent_policy_is_refused(
    min_reports: int, max_reports: int, cohort_size: int, deadline: float
) -> None:
    with pytest.raises(ValueError, match=r"min_reports|deadline_seconds"):
        RoundPolicy(min_reports, max_reports, cohort_size, deadline)


@pytest.mark.parametrize(
    ("min_reports", "max_reports", "cohort_size"),
    [(1, 1, 1), (2, 2, 2), (2, 5, 8)],
)
def test_a_consistent_policy_is_accepted(min_reports: int, max_reports: int, cohort_size: int) -> None:
    policy = RoundPolicy(min_reports, max_reports, cohort_size, 0.5)

    assert (policy.min_reports, policy.max_reports, policy.cohort_size) == (
        min_reports,
        max_reports,
        cohort_size,
    )


def test_a_nan_deadline_is_refused() -> None:
    with pytest.raises(ValueError, match="deadline_seconds"):
        RoundPolicy(1, 1, 1, math.nan)


# -- retrying ------------------------------------------------------------------------------------------


def test_a_retried_attempt_keeps_the_reports_and_releases_the_silent_slots() -> None:
    # Given an attempt that admitted three devices, of which one reported
    state, keys = _round(min_reports=2, max_reports=3, cohort_size=3), _keys()
    for device in ("reported", "silent-1", "silent-2"):
        _admit(state, device, keys=keys)
    _report(state, "reported")

    # When the next attempt opens at the deadline
    retried = state.retried(DEADLINE)

    # Then it is the same round's next attempt, with a full deadline of its own
    assert (retried.number, retried.attempt, retried.deadline) == (1, 2, DEADLINE + DEADLINE_SECONDS)
    # And the report still counts and its device is not asked again
    assert retried.reported == state.reported
    assert retried.check_report("reported", state.assignments["reported"], DEADLINE + 1) is False
    _assert_rejected(retried.assign("reported", DEADLINE + 1, keys), "reported for this round already")
    # And the silent devices' slots are free: their old keys are unknown, and two new devices fit
    with pytest.raises(NotFound):
        retried.check_report("silent-1", state.assignments["silent-1"], DEADLINE + 1)
    _admit(retried, "newcomer-1", DEADLINE + 1, keys)
    _admit(retried, "newcomer-2", DEADLINE + 1, keys)
    _assert_rejected(retried.assign("newcomer-3", DEADLINE + 1, keys), "cohort is full")
    # And one more report meets the quorum
    _report(retried, "newcomer-1", DEADLINE + 2)
    assert retried.outcome(DEADLINE + DEADLINE_SECONDS) is Outcome.AGGREGATE

"""The state of one round attempt, as pure logic with the clock passed in.

A round accepts devices until its cohort is full, then takes their reports. It
closes when its quorum is met and either the maximum number of reports has
arrived or the deadline has passed. At the deadline a round short of its quorum
fails, so no round is ever left waiting for reports that will not come; its next
attempt keeps the reports it took.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from cohort.domain.errors import Conflict, Forbidden, NotFound
from cohort.domain.training import RoundPolicy

# Rejected devices are told to come back within this many seconds at most, so
# they notice early when a round closes on its maximum before its deadline.
MAX_RETRY_AFTER_SECONDS = 1.0


@dataclass(frozen=True)
class Assignment:
    request_key: str
    deadline: float


@dataclass(frozen=True)
class Rejection:
    reason: str
    retry_after: float


class Outcome(StrEnum):
    WAITING = "waiting"
    AGGREGATE = "aggregate"
    FAIL = "fail"


@dataclass
class RoundState:
    number: int
    attempt: int
    policy: RoundPolicy
    opened_at: float
    assignments: dict[str, str] = field(default_factory=dict)  # device id -> request key
    reported: set[str] = field(default_factory=set)  # request keys

    @property
    def deadline(self) -> float:
        return self.opened_at + self.policy.deadline_seconds

    def _retry_after(self, now: float) -> float:
        return round(min(max(self.deadline - now, 0.5), MAX_RETRY_AFTER_SECONDS), 3)

    def assign(
        self, device_id: str, now: float, new_request_key: Callable[[], str]
    ) -> Assignment | Rejection:
        """Give a device a slot in this round; asking twice returns the same slot."""
        if now >= self.deadline:
            return Rejection("the round's deadline has passed", self._retry_after(now))
        if device_id in self.assignments:
            request_key = self.assignments[device_id]
            if request_key in self.reported:
                return Rejection("this device has reported for this round already", self._retry_after(now))
            return Assignment(request_key, self.deadline)
        if len(self.assignments) >= self.policy.cohort_size:
            return Rejection("the round's cohort is full", self._retry_after(now))
        request_key = new_request_key()
        self.assignments[device_id] = request_key
        return Assignment(request_key, self.deadline)

    def check_report(self, device_id: str, request_key: str, now: float) -> bool:
        """Whether a report may be taken; False if it was taken already.

        Raises for a key this attempt never issued, a key issued to another
        device, or a first report after the deadline.
        """
        owner = next((device for device, key in self.assignments.items() if key == request_key), None)
        if owner is None:
            raise NotFound("unknown request key for the current round; ask for a new cycle")
        if owner != device_id:
            raise Forbidden("this request key was issued to another device")
        if request_key in self.reported:
            return False
        if now >= self.deadline:
            raise Conflict("the round's deadline has passed; the report was not counted")
        return True

    def record_report(self, request_key: str) -> None:
        self.reported.add(request_key)

    def retried(self, opened_at: float) -> RoundState:
        """The next attempt of this round, open from ``opened_at`` for a full deadline.

        The reports this attempt took stay counted, and their devices keep their slots (so they are
        not asked again); the slots that did not report are released for other devices.
        """
        kept = {device: key for device, key in self.assignments.items() if key in self.reported}
        return RoundState(self.number, self.attempt + 1, self.policy, opened_at, kept, set(self.reported))

    def outcome(self, now: float) -> Outcome:
        reports = len(self.reported)
        if reports >= self.policy.max_reports:
            return Outcome.AGGREGATE
        if now >= self.deadline:
            return Outcome.AGGREGATE if reports >= self.policy.min_reports else Outcome.FAIL
        return Outcome.WAITING

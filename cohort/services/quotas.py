"""Quotas per scientist: training jobs that have not ended, and evaluations that wait or run.

Each check counts the scientist's own records through their owner index, filtered on status and
answered as a count only (``Select=COUNT``): a query, never a scan, and no item crosses the wire.
Past a quota the API answers 429, naming the quota, the count and the setting that raises it.

The count and the creation that follows are not one transaction, and an index is read eventually
consistently (usually within a second of a write). Requests of one scientist that arrive in the same
instant may each see room for one more, so such a burst can overshoot a quota by the number of
simultaneous requests less one; the API's throttle bounds that burst, and the next request after it
is refused. A quota here bounds what a scientist holds over time, not an exact instant. Closing the
race would take a counter decremented on every path that ends a job or an evaluation (the node, the
launcher, the evaluator), which each path could miss.
"""

from __future__ import annotations

from cohort.domain.errors import TooManyRequests
from cohort.domain.records import (
    FINAL_EVALUATION_STATUSES,
    OPEN_JOB_STATUSES,
    EvaluationRecord,
    TrainingJobRecord,
)
from cohort.settings import get_settings
from cohort.web.auth import Principal


def check_training(scientist: Principal) -> None:
    """Refuse a new training job while the scientist has as many that have not ended as allowed."""
    active = TrainingJobRecord.by_owner.count(
        scientist.user_id, filter_condition=TrainingJobRecord.status.is_in(*OPEN_JOB_STATUSES)
    )
    _refuse_at_limit(
        active,
        get_settings().max_active_jobs_per_scientist,
        what=f"training jobs that have not ended ({', '.join(OPEN_JOB_STATUSES)})",
        setting="max_active_jobs_per_scientist",
        wait="Wait for one to complete or fail",
    )


def check_evaluation(scientist: Principal) -> None:
    """Refuse a new evaluation while the scientist has as many queued or running as allowed."""
    waiting = EvaluationRecord.by_owner.count(
        scientist.user_id, filter_condition=~EvaluationRecord.status.is_in(*FINAL_EVALUATION_STATUSES)
    )
    _refuse_at_limit(
        waiting,
        get_settings().max_queued_evaluations_per_scientist,
        what="evaluations queued or running",
        setting="max_queued_evaluations_per_scientist",
        wait="Wait for one to complete or fail",
    )


def _refuse_at_limit(count: int, limit: int, *, what: str, setting: str, wait: str) -> None:
    if count < limit:
        return
    raise TooManyRequests(
        f"quota {setting} reached: you have {count} {what}, and a scientist may have {limit} at once. "
        f"{wait}, or ask the platform's administrator to raise it (COHORT_{setting.upper()} on the "
        f"orchestrator; '{setting}' in the stage's block of cdk.json)"
    )

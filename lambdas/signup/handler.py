"""The signup function: Cognito's post-confirmation trigger.

Creates the user's profile, adds them to their role's group and queues the
welcome email (``cohort.services.signup``), then hands Cognito its event back,
as every Cognito trigger must.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from cohort.services.signup import InvalidRole, PostConfirmationEvent, confirm_sign_up

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    trigger = PostConfirmationEvent.model_validate(event)
    logger.append_keys(trigger_source=trigger.triggerSource, user_name=trigger.userName)
    try:
        signup = confirm_sign_up(trigger)
    except InvalidRole as exc:
        # Cognito shows this message to the client that confirmed; the account stays
        # confirmed but has no profile or group, so it can do nothing until an admin sets the role.
        logger.error("sign-up refused", extra={"problem": exc.message})
        metrics.add_metric(name="SignupsRefused", unit=MetricUnit.Count, value=1)
        raise
    if signup is None:
        logger.info("not a sign-up confirmation: nothing to do")
    elif signup.created:
        logger.info("user set up", extra={"role": signup.role})
        metrics.add_metric(name="ProfilesCreated", unit=MetricUnit.Count, value=1)
    else:
        logger.info("retried confirmation: the profile was there already", extra={"role": signup.role})
    return event

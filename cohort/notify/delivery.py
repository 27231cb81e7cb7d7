"""Send each notification at most once: Powertools idempotency keyed on its ``notification_id``.

The first delivery of an id sends the email and stores SES's message id in the
catalogue's idempotency table; a retry or a duplicate within the window gets
that stored result back and sends nothing. A send that fails leaves no record,
so the next attempt sends again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from cohort import aws
from cohort.catalogue import Table
from cohort.notify import sending
from cohort.notify.messages import Notification
from cohort.settings import get_settings

# As long as the dead-letter queue keeps a message: a copy redriven from it is still recognised.
IDEMPOTENCY_WINDOW_SECONDS = 14 * 24 * 3600
# Keys read "notification#<hash of the id>", the same whichever function or process sends.
KEY_PREFIX = "notification"


class Delivery(BaseModel):
    notification_id: str
    message_id: str  # SES's, from the first delivery
    duplicate: bool = False  # sent before: nothing was sent this time


def deliver(notification: Notification, lambda_context: LambdaContext) -> Delivery:
    """Send the email unless this id was sent already; errors are those of :func:`sending.send`."""
    send_once, config = _idempotent_send(
        aws.client("dynamodb"), get_settings().catalogue.table(Table.IDEMPOTENCY)
    )
    # An in-progress record expires with the invocation, so a crash mid-send does not block retries.
    config.register_lambda_context(lambda_context)
    return Delivery.model_validate(send_once(notification=notification))


@cache
def _idempotent_send(client: Any, table_name: str) -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
    # Built once per client: the persistence layer registers a hook on the client it is given.
    config = IdempotencyConfig(
        event_key_jmespath="notification_id",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS,
        response_hook=_mark_duplicate,
    )
    store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
    send_once = idempotent_function(
        _send,
        data_keyword_argument="notification",
        persistence_store=store,
        config=config,
        key_prefix=KEY_PREFIX,
    )
    return send_once, config


def _send(notification: Notification) -> dict[str, Any]:
    sent = sending.send(notification)
    return {"notification_id": sent.notification_id, "message_id": sent.message_id}


def _mark_duplicate(response: dict[str, Any], _: DataRecord) -> dict[str, Any]:
    """Powertools calls this only when it returns a stored result instead of sending."""
    return {**response, "duplicate": True}

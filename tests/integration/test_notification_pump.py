"""The local notification pump on moto: it treats the queue as Lambda's SQS event source does."""

from __future__ import annotations

import threading
from email import message_from_bytes, policy
from pathlib import Path

from cohort import aws
from cohort.catalogue import Queue
from cohort.local.notification_pump import NotificationPump
from cohort.local.outbox import Outbox
from cohort.local.provision import UserPool
from cohort.notify.messages import Welcome
from cohort.notify.queue import enqueue
from cohort.settings import get_settings

from .functions import sent_emails


def test_sent_messages_are_deleted_and_failed_ones_come_back_later(account: UserPool, tmp_path: Path) -> None:
    # Given a welcome notification and a message off the contract on the queue
    sqs = aws.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=get_settings().catalogue.queue(Queue.NOTIFICATIONS))["QueueUrl"]
    enqueue(Welcome(notification_id="welcome-u1", to="ada@example.org", role="scientist"))
    sqs.send_message(QueueUrl=queue_url, MessageBody='{"kind": "welcome"}')
    outbox = Outbox(tmp_path / "outbox")

    # When the pump runs until the welcome email is in the outbox
    pump = NotificationPump(outbox)
    pumping = threading.Thread(target=pump.run)
    pumping.start()
    try:
        written = outbox.wait_for("welcome-u1", timeout=30)
    finally:
        pump.stopping.set()
        pumping.join(timeout=10)

    # Then the outbox holds exactly what SES sent
    (sent,) = sent_emails()
    assert message_from_bytes(written.read_bytes(), policy=policy.default)["Message-ID"] == sent["Message-ID"]
    # and the sent message was deleted, while the failed one is only hidden until SQS delivers it again
    counts = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "1"}
    # and the pump stopped when asked
    assert not pumping.is_alive()

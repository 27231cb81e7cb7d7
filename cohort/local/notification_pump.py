"""The local platform's stand-in for Lambda's SQS event source on the notifications queue.

It long-polls the queue on the emulator, hands each batch to the email
function's handler as a real SQS event, and deletes the messages the handler
did not report in ``batchItemFailures``; the failed ones reappear after the
visibility timeout and, after five receives, move to the dead-letter queue,
as on AWS. Every email sent is also written to the outbox.

It runs as a process of its own (``python -m cohort.local.notification_pump``),
so the handler sees the platform's environment, whatever the process that
started the platform does with its own.
"""

from __future__ import annotations

import logging
import signal
import threading
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import typer

from cohort import aws
from cohort.catalogue import Queue
from cohort.local import lambda_runtime
from cohort.local.outbox import Outbox
from cohort.notify import sending
from cohort.settings import get_settings

log = logging.getLogger(__name__)

BATCH_SIZE = 10  # as the functions stack's event source
WAIT_SECONDS = 1  # each long poll's bound, and so how long a stop may take to be noticed
_BACKOFF_SECONDS = 2.0


class NotificationPump:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.stopping = threading.Event()

    def run(self) -> None:
        """Pump until :attr:`stopping` is set; an error is logged and the pump carries on."""
        sending.add_sink(self._outbox)
        try:
            while not self.stopping.is_set():
                try:
                    self.pump_once()
                except Exception:
                    log.exception("pumping the notifications queue failed; trying again")
                    self.stopping.wait(_BACKOFF_SECONDS)
        finally:
            sending.remove_sink(self._outbox)

    def pump_once(self) -> int:
        """Receive one batch, invoke the handler with it, delete what succeeded; returns the batch size."""
        sqs = aws.client("sqs")
        queue_url, queue_arn = self._queue
        messages = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=BATCH_SIZE,
            WaitTimeSeconds=WAIT_SECONDS,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        # An exception fails the whole batch: nothing is deleted and every message comes back.
        response = lambda_runtime.invoke("email", sqs_event(messages, queue_arn))
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)

    @cached_property
    def _queue(self) -> tuple[str, str]:
        sqs = aws.client("sqs")
        url = sqs.get_queue_url(QueueName=get_settings().catalogue.queue(Queue.NOTIFICATIONS))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda builds from received messages (see tests/events/sqs_notifications.json)."""
    region = queue_arn.split(":")[3]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def main(outbox: Annotated[Path, typer.Option(help="Folder the sent emails are written to")]) -> None:
    """Run the pump until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    pump = NotificationPump(Outbox(outbox))
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: pump.stopping.set())
    log.info("pumping the notifications queue to the email handler; outbox %s", outbox)
    pump.run()


if __name__ == "__main__":
    typer.run(main)

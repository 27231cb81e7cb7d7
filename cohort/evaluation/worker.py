"""The evaluator: takes evaluation jobs from the evaluations queue and runs them, one at a time.

Delivery is at least once, so every step is safe to repeat:

- a message whose evaluation has completed or failed is deleted without a run;
- a run starts only by claiming the record (``queued`` to ``running``, conditionally), so two
  copies of one message never run at once; a ``running`` record is claimed again only when its
  heartbeat has stopped, which means the worker that held it is gone;
- while a job runs, a heartbeat thread extends the message's visibility and writes progress;
- the message is deleted on success, and on a failure no retry can fix (a malformed model file,
  an invalid evaluation set): those fail the evaluation at once with the reason. Any other failure
  leaves the message for SQS to deliver again; at the last receive the evaluation is marked failed,
  and SQS moves the message to the dead-letter queue.

``python -m cohort.evaluation.worker`` runs it (the evaluator container's entrypoint); SIGTERM stops
it after handing a running job back to the queue.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pynamodb.exceptions import UpdateError

from cohort import aws, storage
from cohort.catalogue import MAX_RECEIVES, Bucket, Queue
from cohort.domain.errors import CohortError
from cohort.domain.records import (
    FINAL_EVALUATION_STATUSES,
    EvaluationRecord,
    EvaluationStatus,
    ModelRecord,
    UserRecord,
    bind_tables,
    utcnow,
)
from cohort.evaluation import engine, report
from cohort.evaluation.jobs import EvaluationMessage, fail, report_key
from cohort.evaluation.loading import load_data, load_model
from cohort.evaluation.spec import EvaluationSpec
from cohort.notify.messages import MAX_REASON, Attachment, EvaluationFinished
from cohort.notify.queue import enqueue
from cohort.settings import get_settings

log = logging.getLogger(__name__)

WAIT_SECONDS = 20  # SQS's longest long poll
PROGRESS_INTERVAL_SECONDS = 2.0
_BACKOFF_SECONDS = 5.0
_CONTENT_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True)
class _Finished:
    """What a completed run leaves: the model's name, the headline numbers, and what to try if unreliable."""

    model_name: str
    summary: dict[str, float]
    advice: str


class Interrupted(Exception):
    """The worker is shutting down; the job goes back to the queue for another run."""


class _Heartbeat:
    """While a job runs: keeps its message invisible to other workers and writes its progress."""

    def __init__(
        self, worker: EvaluationWorker, evaluation_id: str, receipt_handle: str, interval: float
    ) -> None:
        self._worker = worker
        self._evaluation_id = evaluation_id
        self._receipt_handle = receipt_handle
        self._interval = interval
        self._fraction = 0.0
        self._written = -1.0
        self._extended_at = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{evaluation_id}", daemon=True)

    def progress(self, fraction: float) -> None:
        """The engine's progress callback: cheap, and where a shutdown interrupts the job."""
        if self._worker.stopping.is_set():
            raise Interrupted("the evaluator is shutting down")
        self._fraction = min(max(float(fraction), 0.0), 1.0)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._beat()
            except Exception:
                log.exception("heartbeat of evaluation %s failed; trying again", self._evaluation_id)

    def _beat(self) -> None:
        worker = self._worker
        # Extend at a third of the timeout, so one failed call still leaves time for the next.
        if time.monotonic() - self._extended_at >= worker.visibility_seconds / 3:
            aws.client("sqs").change_message_visibility(
                QueueUrl=worker.queue_url,
                ReceiptHandle=self._receipt_handle,
                VisibilityTimeout=worker.visibility_seconds,
            )
            self._extended_at = time.monotonic()
        actions = [EvaluationRecord.updated_at.set(utcnow())]  # the heartbeat other workers check
        if self._fraction != self._written:
            actions.append(EvaluationRecord.progress.set(round(self._fraction, 4)))
        EvaluationRecord(self._evaluation_id).update(
            actions=actions, condition=EvaluationRecord.status == EvaluationStatus.RUNNING
        )
        self._written = self._fraction


class EvaluationWorker:
    def __init__(
        self,
        *,
        wait_seconds: int = WAIT_SECONDS,
        visibility_seconds: int | None = None,
        progress_interval: float = PROGRESS_INTERVAL_SECONDS,
    ) -> None:
        self._wait_seconds = wait_seconds
        self._visibility_seconds = visibility_seconds
        self._progress_interval = progress_interval
        self.stopping = threading.Event()

    @cached_property
    def queue_url(self) -> str:
        name = get_settings().catalogue.queue(Queue.EVALUATIONS)
        return aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]

    @cached_property
    def visibility_seconds(self) -> int:
        """How long a received message stays hidden: the queue's own timeout unless given."""
        if self._visibility_seconds is not None:
            return self._visibility_seconds
        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        return int(attributes["VisibilityTimeout"])

    def run(self) -> None:
        """Take jobs until :attr:`stopping` is set; an error is logged and the worker carries on."""
        log.info("evaluator polling %s on %s", self.queue_url, engine.pick_device())
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling the evaluations queue failed; trying again")
                self.stopping.wait(_BACKOFF_SECONDS)

    def poll_once(self) -> int:
        """Receive at most one message (long polling) and handle it; returns how many were received."""
        messages = (
            aws.client("sqs")
            .receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,  # one job at a time: it has the whole GPU
                WaitTimeSeconds=self._wait_seconds,
                VisibilityTimeout=self.visibility_seconds,
                AttributeNames=["ApproximateReceiveCount"],
            )
            .get("Messages", [])
        )
        for message in messages:
            self.handle(message)
        return len(messages)

    def handle(self, message: dict[str, Any]) -> None:
        receives = int(message["Attributes"]["ApproximateReceiveCount"])
        try:
            evaluation_id = EvaluationMessage.model_validate_json(message["Body"]).evaluation_id
        except ValidationError:
            # Only Cohort writes here: keep the message for the dead-letter queue and a person.
            log.error("message %s is not an evaluation job; left for the DLQ", message["MessageId"])
            return
        try:
            record = EvaluationRecord.get(evaluation_id, consistent_read=True)
        except EvaluationRecord.DoesNotExist:
            log.error("evaluation %s does not exist; message dropped", evaluation_id)
            self._delete(message)
            return
        if record.status in FINAL_EVALUATION_STATUSES:
            log.info("evaluation %s is %s already; duplicate message dropped", evaluation_id, record.status)
            self._delete(message)
            return
        if not self._claim(record):
            log.info("evaluation %s is running on another worker; message left", evaluation_id)
            return
        self._run(record, message, receives)

    def _run(self, record: EvaluationRecord, message: dict[str, Any], receives: int) -> None:
        """Run a claimed evaluation; the message is deleted on success and on a permanent failure."""
        evaluation_id = record.evaluation_id
        log.info("evaluation %s: attempt %s (receive %s)", evaluation_id, int(record.attempts), receives)
        try:
            with _Heartbeat(self, evaluation_id, message["ReceiptHandle"], self._heartbeat_interval) as beat:
                finished = self._evaluate(record, beat.progress)
        except Interrupted:
            self._requeue(record, "interrupted: the evaluator shut down; the evaluation will run again")
            aws.client("sqs").change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
            return
        except CohortError as exc:  # the model, the data or the spec: no retry can change them
            log.warning("evaluation %s failed: %s", evaluation_id, exc.message)
            self._fail(record, exc.message)
            self._delete(message)
            return
        except Exception as exc:
            log.exception("evaluation %s: attempt %s failed", evaluation_id, receives)
            if receives >= MAX_RECEIVES:
                # SQS moves the message to the dead-letter queue when it next comes round.
                self._fail(record, f"failed {receives} times; the last error: {exc}")
            else:
                self._requeue(
                    record, f"attempt {receives} of {MAX_RECEIVES} failed ({exc}); it will be retried"
                )
            return
        record.update(
            actions=[
                EvaluationRecord.status.set(EvaluationStatus.COMPLETED),
                EvaluationRecord.status_reason.remove(),
                EvaluationRecord.progress.set(1),
                EvaluationRecord.summary.set(finished.summary),
                EvaluationRecord.report_key.set(report_key(evaluation_id, report.JSON_FILE)),
                EvaluationRecord.updated_at.set(utcnow()),
            ]
        )
        self._delete(message)
        log.info("evaluation %s completed: %s", evaluation_id, finished.summary)
        self._announce(record, finished.model_name, finished.advice)

    @property
    def _heartbeat_interval(self) -> float:
        return min(self._progress_interval, self.visibility_seconds / 3)

    def _claim(self, record: EvaluationRecord) -> bool:
        """Queued, or running with a stopped heartbeat, to running; False if another worker holds it."""
        stale_before = utcnow() - timedelta(
            seconds=max(self.visibility_seconds / 2, self._heartbeat_interval * 3)
        )
        try:
            record.update(
                actions=[
                    EvaluationRecord.status.set(EvaluationStatus.RUNNING),
                    EvaluationRecord.attempts.add(1),
                    EvaluationRecord.updated_at.set(utcnow()),
                ],
                condition=(EvaluationRecord.status == EvaluationStatus.QUEUED)
                | (
                    (EvaluationRecord.status == EvaluationStatus.RUNNING)
                    & (EvaluationRecord.updated_at < stale_before)
                ),
            )
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _evaluate(self, record: EvaluationRecord, progress: Any) -> _Finished:
        """Load, attack, and store the report; returns what the record and the email say of it."""
        spec = EvaluationSpec.model_validate(record.request)
        loaded = load_model(record)
        data = load_data(spec, loaded.architecture)
        device = engine.pick_device()
        log.info(
            "evaluation %s: %s samples of %s on %s", record.evaluation_id, len(data.labels), data.name, device
        )
        result, artifacts = engine.run_evaluation(
            loaded.module, data, spec, device=device, progress=progress, model_sha256=loaded.sha256
        )
        context = report.ReportContext(record.evaluation_id, loaded.name)
        for filename, body in report.render(result, artifacts, context).items():
            content_type = _CONTENT_TYPES["." + filename.rsplit(".", 1)[-1]]
            storage.put_bytes(
                Bucket.REPORTS, report_key(record.evaluation_id, filename), body, content_type=content_type
            )
        return _Finished(loaded.name, report.summary(result), result.headline.advice or "")

    def _requeue(self, record: EvaluationRecord, reason: str) -> None:
        record.update(
            actions=[
                EvaluationRecord.status.set(EvaluationStatus.QUEUED),
                EvaluationRecord.status_reason.set(reason[:MAX_REASON]),
                EvaluationRecord.updated_at.set(utcnow()),
            ]
        )

    def _fail(self, record: EvaluationRecord, reason: str) -> None:
        fail(record, reason)
        self._announce(record, None)

    def _delete(self, message: dict[str, Any]) -> None:
        aws.client("sqs").delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _announce(self, record: EvaluationRecord, model_name: str | None, advice: str = "") -> None:
        """Email the owner the outcome, with the report attached; a courtesy that never fails the job."""
        try:
            enqueue(_notification(record, model_name, advice))
        except Exception:
            log.exception("the evaluation-finished notification of %s was not queued", record.evaluation_id)


def _notification(record: EvaluationRecord, model_name: str | None, advice: str = "") -> EvaluationFinished:
    completed = record.status == EvaluationStatus.COMPLETED
    attachments = ()
    if completed:
        key = report_key(record.evaluation_id, report.HTML_FILE)
        attachments = (Attachment(key=key, filename=f"robustness-report-{record.evaluation_id[:12]}.html"),)
    return EvaluationFinished(
        notification_id=f"evaluation-finished-{record.evaluation_id}",
        to=UserRecord.get(record.owner_id).email,
        evaluation_id=record.evaluation_id,
        model_name=model_name or ModelRecord.get(record.model_id).name,
        status="completed" if completed else "failed",
        reason=(record.status_reason or "")[:MAX_REASON],
        results=record.summary or {},
        advice=advice[:MAX_REASON],
        attachments=attachments,
    )


def main(
    once: Annotated[bool, typer.Option(help="Handle at most one message, then exit")] = False,
    wait_seconds: Annotated[int, typer.Option(min=0, max=20, help="Long-poll bound")] = WAIT_SECONDS,
) -> None:
    """Run the evaluator until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    bind_tables(get_settings())
    worker = EvaluationWorker(wait_seconds=wait_seconds)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: worker.stopping.set())
    if once:
        worker.poll_once()
    else:
        worker.run()


if __name__ == "__main__":
    typer.run(main)

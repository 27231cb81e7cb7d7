"""The local platform's stand-in for Lambda's event source on the datasets table's stream.

It polls the table's DynamoDB stream on the emulator and hands the dataset
function the records the functions stack lets through (INSERTs, in batches of
up to ten), shaped as Lambda delivers them. It keeps the event source's
partial-batch rules: when the handler reports ``batchItemFailures``, or raises,
delivery resumes from the earliest failed record, so the records after it come
again too (the handler skips what it has done). After three retries the batch
is parked in a failures file, as AWS parks it in the on-failure queue, and the
stream moves on.

It runs as a process of its own (``python -m cohort.local.stream_pump``), so
the handler sees the platform's environment, whatever the process that started
the platform does with its own.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from cohort import aws
from cohort.catalogue import Table
from cohort.local import lambda_runtime
from cohort.settings import get_settings

log = logging.getLogger(__name__)

FUNCTION = "dataset_generation"
BATCH_SIZE = 10  # as the functions stack's event source
MAX_RETRIES = 3  # likewise
POLL_SECONDS = 0.2  # between empty polls, and so how long a stop may take to be noticed
_RETRY_BACKOFF_SECONDS = 0.5  # doubled on each retry
_RECORDS_PER_READ = 100
_SHARD_REFRESH_SECONDS = 10.0  # how often new shards are looked for

Record = dict[str, Any]
Invoke = Callable[[dict[str, Any]], Any]


class StreamPump:
    def __init__(
        self,
        table_name: str,
        failures: Path,
        invoke: Invoke,
        *,
        retry_backoff: float = _RETRY_BACKOFF_SECONDS,
    ) -> None:
        self._table_name = table_name
        self._failures = failures
        self._invoke = invoke
        self._retry_backoff = retry_backoff
        self._stream_arn = ""
        self._iterators: dict[str, str] = {}  # open shards: where to read next
        self._done_shards: set[str] = set()
        self._shards_listed_at = -_SHARD_REFRESH_SECONDS
        self.stopping = threading.Event()

    def run(self) -> None:
        """Pump until :attr:`stopping` is set; an error is logged and the pump carries on."""
        while not self.stopping.is_set():
            try:
                delivered = self.pump_once()
            except Exception:
                log.exception("reading the datasets stream failed; trying again")
                delivered = 0
            if not delivered:
                self.stopping.wait(POLL_SECONDS)

    def pump_once(self) -> int:
        """Read every open shard once and deliver what passes the filter; returns how many records."""
        streams = aws.client("dynamodbstreams")
        if time.monotonic() - self._shards_listed_at >= _SHARD_REFRESH_SECONDS:
            self._list_shards(streams)
        delivered = 0
        for shard_id, iterator in list(self._iterators.items()):
            response = streams.get_records(ShardIterator=iterator, Limit=_RECORDS_PER_READ)
            inserts = [self._as_delivered(r) for r in response["Records"] if r["eventName"] == "INSERT"]
            for start in range(0, len(inserts), BATCH_SIZE):
                self._deliver(inserts[start : start + BATCH_SIZE])
            delivered += len(inserts)
            if response.get("NextShardIterator"):
                self._iterators[shard_id] = response["NextShardIterator"]
            else:  # a closed shard, read to its end
                del self._iterators[shard_id]
                self._done_shards.add(shard_id)
        return delivered

    def _list_shards(self, streams: Any) -> None:
        if not self._stream_arn:
            table = aws.client("dynamodb").describe_table(TableName=self._table_name)["Table"]
            self._stream_arn = table["LatestStreamArn"]
        description = streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]
        for shard in description["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators and shard_id not in self._done_shards:
                self._iterators[shard_id] = streams.get_shard_iterator(
                    StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
        self._shards_listed_at = time.monotonic()

    def _as_delivered(self, record: Record) -> Record:
        """A record from GetRecords as Lambda puts it in an event: with its source, its time in seconds."""
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = int(created.timestamp())
        return {**record, "dynamodb": change, "eventSourceARN": self._stream_arn}

    def _deliver(self, batch: Sequence[Record]) -> None:
        pending, problem = list(batch), ""
        for attempt in range(MAX_RETRIES + 1):
            if attempt:
                log.warning(
                    "retrying %d dataset records (%s), attempt %d", len(pending), problem, attempt + 1
                )
                self.stopping.wait(self._retry_backoff * 2 ** (attempt - 1))
            first_failed, problem = self._invoke_once(pending)
            if first_failed is None:
                return
            pending = pending[first_failed:]
        self._park(pending, problem)

    def _invoke_once(self, batch: list[Record]) -> tuple[int | None, str]:
        """Where delivery must resume, or None when the batch went through; and why."""
        try:
            response = self._invoke({"Records": batch})
        except Exception as exc:
            return 0, f"the function raised {exc!r}"
        failures = (response or {}).get("batchItemFailures") or []
        if not failures:
            return None, ""
        positions = {record["dynamodb"]["SequenceNumber"]: i for i, record in enumerate(batch)}
        try:
            first = min(positions[item["itemIdentifier"]] for item in failures)
        except (KeyError, TypeError):  # Lambda takes an unknown identifier for the whole batch failing
            return 0, f"unknown batchItemFailures {failures}"
        return first, f"{len(failures)} reported in batchItemFailures"

    def _park(self, records: Sequence[Record], problem: str) -> None:
        log.error("parking %d dataset records after %d retries: %s", len(records), MAX_RETRIES, problem)
        entry = {
            "parked_at": datetime.now(UTC).isoformat(),
            "problem": problem,
            "retries": MAX_RETRIES,
            "records": list(records),
        }
        self._failures.parent.mkdir(parents=True, exist_ok=True)
        with self._failures.open("a") as out:
            out.write(json.dumps(entry, default=str) + "\n")


def main(
    failures: Annotated[Path, typer.Option(help="File the records that kept failing are appended to")],
) -> None:
    """Run the pump until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    table = get_settings().catalogue.table(Table.DATASETS)
    pump = StreamPump(table, failures, partial(lambda_runtime.invoke, FUNCTION))
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: pump.stopping.set())
    log.info("pumping the stream of %s to the %s handler; failures go to %s", table, FUNCTION, failures)
    pump.run()


if __name__ == "__main__":
    typer.run(main)

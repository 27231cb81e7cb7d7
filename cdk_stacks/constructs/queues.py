"""SQS queues with a dead-letter queue, encrypted and TLS-only."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk_stacks.constructs.findings import acknowledge
from cohort.catalogue import MAX_RECEIVES


def dead_letter_queue(scope: Construct, construct_id: str, queue_name: str | None = None) -> sqs.Queue:
    """Where failed messages wait, for the longest retention SQS allows, for a person to look at."""
    dead_letters = sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    acknowledge(dead_letters, "SQS3", "It is itself a dead-letter queue; its messages wait for a person.")
    return dead_letters


def queue_with_dead_letters(
    scope: Construct,
    construct_id: str,
    *,
    queue_name: str,
    dead_letter_name: str,
    visibility_timeout: Duration,
) -> tuple[sqs.Queue, sqs.Queue]:
    dead_letters = dead_letter_queue(scope, f"{construct_id}DeadLetters", dead_letter_name)
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=MAX_RECEIVES),
    )
    return queue, dead_letters

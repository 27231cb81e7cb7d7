"""Notifications on the running local platform: sign-up and training end in emails in the outbox."""

from __future__ import annotations

import re
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import torch

from cohort.catalogue import Group
from cohort.domain.records import TrainingJobRecord, UserRecord
from cohort.domain.weights import encode
from cohort.local.accounts import create_confirmed_user
from cohort.local.outbox import Outbox
from cohort.local.platform import PlatformState

from .scenario import Device, Setting

# The pump polls every second; the FL node queues its email a moment after the job ends.
_ARRIVAL_SECONDS = 30.0


def _email(platform: PlatformState, notification_id: str) -> EmailMessage:
    path = Outbox(Path(platform.outbox)).wait_for(notification_id, timeout=_ARRIVAL_SECONDS)
    return message_from_bytes(path.read_bytes(), policy=policy.default)


def test_signing_up_runs_the_trigger_and_sends_a_welcome_email(platform: PlatformState) -> None:
    # Given a person who signs up as an app developer and confirms
    email = f"grace-{uuid.uuid4().hex[:8]}@example.org"
    sub = create_confirmed_user(
        platform.user_pool_id,
        platform.user_pool_client_id,
        email,
        f"{uuid.uuid4().hex}aA1!",
        Group.APP_DEVELOPERS,
    )

    # Then the signup handler created their profile
    assert UserRecord.get(sub).role == "app_developer"
    # and the welcome email went through the queue and the email handler into the outbox
    welcome = _email(platform, f"welcome-{sub}")
    assert (welcome["To"], welcome["Subject"]) == (email, "Welcome to Cohort")
    assert "an app developer" in welcome.get_body(("plain",)).get_content()
    assert "an app developer" in welcome.get_body(("html",)).get_content()


def test_a_finished_training_job_emails_its_owner(platform: PlatformState, setting: Setting) -> None:
    # Given a one-round job that one device completes
    job_id = setting.start(rounds=1, min_reports=1, max_reports=1, round_deadline_seconds=30)["job_id"]
    device = Device(platform, setting.api_key, "only-device")
    node = device.node_url(job_id)
    slot = device.cycle(node).json()
    delta = {name: torch.zeros_like(tensor) for name, tensor in setting.initial_weights.items()}
    assert device.report(node, slot["request_key"], encode(delta), num_samples=20).status_code == 202

    # Then the owner gets an email saying so, with the round count and the devices' metrics
    email = _email(platform, f"training-finished-{job_id}")
    owner = UserRecord.get(TrainingJobRecord.get(job_id).owner_id)
    assert (email["To"], email["Subject"]) == (owner.email, "Training of tiny-mlp completed")
    text = email.get_body(("plain",)).get_content()
    assert f"Training job {job_id}" in text
    assert "1 of 1 rounds" in text
    assert "Final accuracy on devices: 50.00%" in text  # what the device reported
    assert re.search(r"Final loss on devices:\s+0\.5000", text)

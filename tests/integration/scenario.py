"""Shared pieces of the protocol tests: a tiny model and a ready-made setting."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

import httpx
import pytest
import torch

from cohort.federated.device_key import DeviceKey
from cohort.local.platform import PlatformState
from cohort.sdk import CohortClient, CohortError

AVAILABLE = {"availability": {"battery": 0.9, "charging": True, "network": "wifi"}}
TINY_MLP = {
    "input_shape": [1, 8, 8],
    "num_classes": 10,
    "layers": [
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 64, "out_features": 32},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 32, "out_features": 10},
    ],
}


@dataclass
class Setting:
    scientist: CohortClient
    dataset_id: str
    api_key: str
    model_id: str
    initial_weights: dict[str, torch.Tensor]
    developer: CohortClient | None = None  # who registered the dataset

    def start(self, **server_config: object) -> dict:
        """Start a job and wait until its node runs, so that devices find it listed (or it has ended:
        a job whose rounds fail fast may be over by then)."""
        client_config = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 2, "momentum": 0.9}
        started = self.scientist.start_training(self.model_id, self.dataset_id, client_config, server_config)
        return self.scientist.wait_until_running(started["job_id"], timeout=120)


def token_request(api_key: str, device_id: str, key: DeviceKey) -> dict:
    """The body of a device's token exchange, with a fresh assertion signed by ``key``."""
    return {
        "api_key": api_key,
        "device_id": device_id,
        "public_key": key.public_key.model_dump(),
        "assertion": key.assertion(device_id),
    }


def exchange_token(
    orchestrator_url: str, api_key: str, device_id: str, key: DeviceKey | None = None
) -> httpx.Response:
    """One token exchange, by a device with ``key`` (a new one if none)."""
    body = token_request(api_key, device_id, key or DeviceKey.generate())
    return httpx.post(f"{orchestrator_url}/v1/devices/token", json=body)


class Device:
    """A device speaking the protocol by hand, to reach the edges the client never hits."""

    def __init__(self, platform: PlatformState, api_key: str, device_id: str) -> None:
        self.key = DeviceKey.generate()
        response = exchange_token(platform.orchestrator_url, api_key, device_id, self.key)
        response.raise_for_status()
        self.headers = {"Authorization": f"Bearer {response.json()['token']}"}
        self.orchestrator_url = platform.orchestrator_url

    def node_url(self, job_id: str) -> str:
        jobs = httpx.get(f"{self.orchestrator_url}/v1/devices/jobs", headers=self.headers).json()
        return next(job["node_url"] for job in jobs if job["job_id"] == job_id)

    def cycle(self, node_url: str) -> httpx.Response:
        return httpx.post(f"{node_url}/cycle", json=AVAILABLE, headers=self.headers)

    def report(
        self, node_url: str, request_key: str, payload: bytes, num_samples: int = 10
    ) -> httpx.Response:
        return httpx.put(
            f"{node_url}/reports/{request_key}",
            params={"num_samples": num_samples, "loss": 0.5, "accuracy": 0.5},
            content=payload,
            headers=self.headers,
        )


def refusal(call: Callable[[], object]) -> CohortError:
    """The error the SDK raises for ``call``; the test fails if it raises none."""
    with pytest.raises(CohortError) as refused:
        call()
    return refused.value


def wait_for_job(
    scientist: CohortClient, job_id: str, statuses: Collection[str], timeout: float = 60.0
) -> dict:
    """The job once its status is one of ``statuses``; the test fails after ``timeout`` seconds."""
    give_up_at = time.monotonic() + timeout
    while (job := scientist.job(job_id))["status"] not in statuses:
        assert time.monotonic() < give_up_at, f"job {job_id} stayed {job['status']}"
        time.sleep(0.2)
    return job

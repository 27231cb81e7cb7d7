"""N simulated devices, each with a private non-IID shard of the digits set, in parallel."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from cohort.datasets.digits import Split, non_iid_shards
from cohort.federated.device import DeviceClient, DeviceError, ParticipationStats

_LISTING_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class SimulationResult:
    devices: int
    stats: list[ParticipationStats]
    errors: list[str]


def simulate(
    orchestrator_url: str,
    api_key: str,
    job_id: str,
    train: Split,
    num_devices: int,
    *,
    alpha: float = 0.5,
    seed: int = 0,
    max_seconds: float = 300.0,
) -> SimulationResult:
    """Run every device until the job ends; returns what each device did."""
    shards = non_iid_shards(train, num_devices, alpha=alpha, seed=seed)
    torch.set_num_threads(1)  # many small models in threads: one core each beats oversubscription

    def run_device(index: int) -> ParticipationStats:
        device = DeviceClient(orchestrator_url, api_key, f"sim-device-{index:04d}", shards[index])
        try:
            give_up_at = time.monotonic() + max_seconds
            # A job is listed once its node is up: a job just started may not be yet.
            while (job := _listed(device, job_id)) is None:
                if time.monotonic() >= give_up_at:
                    raise DeviceError(f"job {job_id} is not open for this device's app")
                time.sleep(_LISTING_POLL_SECONDS)
            return device.participate(job, max_seconds=give_up_at - time.monotonic(), seed=seed + index)
        finally:
            device.close()

    stats, errors = [], []
    with ThreadPoolExecutor(max_workers=num_devices, thread_name_prefix="device") as pool:
        for future in [pool.submit(run_device, i) for i in range(num_devices)]:
            try:
                stats.append(future.result())
            except Exception as exc:  # one broken device must not end the simulation
                errors.append(f"{type(exc).__name__}: {exc}")
    return SimulationResult(devices=num_devices, stats=stats, errors=errors)


def _listed(device: DeviceClient, job_id: str) -> dict | None:
    return next((job for job in device.open_jobs() if job["job_id"] == job_id), None)

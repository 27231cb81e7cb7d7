"""The device side of the protocol, over HTTP: what the app's embedded client does.

1. trade the API key, the device id and an assertion signed with the device's own key
   (the first exchange registers that key) for a device token;
2. list the app's open jobs and take the node URL from there;
3. ask the node for a cycle; if accepted, download the model, train on local
   data and report the delta; if rejected, wait ``retry_after`` and ask again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from cohort.datasets.digits import Split
from cohort.domain.architecture import ArchitectureSpec
from cohort.domain.training import Availability, ClientConfig
from cohort.domain.weights import TensorSignature, decode, encode
from cohort.federated.device_key import DeviceKey
from cohort.federated.training import train_locally

log = logging.getLogger(__name__)

_TOKEN_REFRESH_MARGIN = 30.0
_MAX_TRANSPORT_RETRIES = 5
# Answers that say when to come back (Retry-After): the registration limit, a dependency down.
_COME_BACK_LATER = (429, 503)
_MAX_RETRY_AFTER_SECONDS = 60.0
# A report for a round that has closed (or an attempt that failed) is refused
# with one of these; the device simply asks for the next cycle.
_ROUND_MOVED_ON = (404, 409)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before asking again, when the server says so (and not too long)."""
    if response.status_code not in _COME_BACK_LATER:
        return None
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_SECONDS) if math.isfinite(seconds) else None


class DeviceError(RuntimeError):
    """The platform refused a request; the message carries its reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ParticipationStats:
    rounds_trained: int = 0
    rejections: int = 0
    late_reports: int = 0
    outcome: str = ""
    rounds: list[int] = field(default_factory=list)


class DeviceClient:
    def __init__(
        self,
        orchestrator_url: str,
        api_key: str,
        device_id: str,
        data: Split,
        availability: Availability | None = None,
        timeout: float = 30.0,
        key: DeviceKey | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``key`` is the device's identity: give a real device ``DeviceKey.stored_at(path)``; without one,
        the client makes a key in memory, for this client's lifetime. ``transport`` replaces httpx's
        network transport (a proxy's, or a test's)."""
        self.device_id = device_id
        self.key = key or DeviceKey.generate()
        self._orchestrator_url = orchestrator_url.rstrip("/")
        self._api_key = api_key
        self._data = data
        self._availability = availability or Availability(battery=0.9, charging=True, network="wifi")
        self._http = httpx.Client(timeout=timeout, transport=transport)
        self._token = ""
        self._token_expires_at = 0.0

    def close(self) -> None:
        self._http.close()

    # -- authentication ---------------------------------------------------------------
    def _bearer(self) -> dict[str, str]:
        if time.time() > self._token_expires_at - _TOKEN_REFRESH_MARGIN:
            body = self._call(
                "POST",
                f"{self._orchestrator_url}/v1/devices/token",
                authenticated=False,
                fresh_json=self._token_request,
            ).json()
            self._token = body["token"]
            self._token_expires_at = time.time() + body["expires_in"]
        return {"Authorization": f"Bearer {self._token}"}

    def _token_request(self) -> dict:
        # A new assertion for every attempt: the server refuses one it has seen, even if its answer was lost.
        return {
            "api_key": self._api_key,
            "device_id": self.device_id,
            "public_key": self.key.public_key.model_dump(),
            "assertion": self.key.assertion(self.device_id),
        }

    def _call(
        self,
        method: str,
        url: str,
        *,
        authenticated: bool = True,
        fresh_json: Callable[[], dict] | None = None,
        **kwargs: object,
    ) -> httpx.Response:
        for attempt in range(_MAX_TRANSPORT_RETRIES):
            headers = self._bearer() if authenticated else {}
            if fresh_json is not None:
                kwargs["json"] = fresh_json()
            try:
                response = self._http.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                if attempt == _MAX_TRANSPORT_RETRIES - 1:
                    raise DeviceError(f"{method} {url} failed: {exc}") from exc
                time.sleep(0.2 * 2**attempt)
                continue
            if response.status_code == 401 and authenticated and attempt == 0:
                self._token_expires_at = 0.0  # expired or rotated: fetch a new token once
                continue
            wait = _retry_after(response)
            if wait is not None and attempt < _MAX_TRANSPORT_RETRIES - 1:
                log.info(
                    "device %s: %s %s answered %s; retrying in %.0f s",
                    self.device_id,
                    method,
                    url,
                    response.status_code,
                    wait,
                )
                time.sleep(wait)
                continue
            if response.is_error:
                raise DeviceError(
                    f"{method} {url}: {response.status_code} {response.text[:300]}", response.status_code
                )
            return response
        raise DeviceError(f"{method} {url} kept failing")

    # -- protocol ---------------------------------------------------------------------
    def open_jobs(self) -> list[dict]:
        return self._call("GET", f"{self._orchestrator_url}/v1/devices/jobs").json()

    def participate(self, job: dict, *, max_seconds: float, seed: int = 0) -> ParticipationStats:
        """Take part in ``job`` (an entry of :meth:`open_jobs`) until it ends or ``max_seconds`` pass."""
        stats = ParticipationStats()
        node_url = job["node_url"]
        give_up_at = time.monotonic() + max_seconds
        while time.monotonic() < give_up_at:
            try:
                self._take_one_cycle(node_url, stats, seed, give_up_at)
            except DeviceError as exc:
                if exc.status is not None:
                    raise
                # The node is unreachable: it shuts down once its job ends, or was
                # moved. The orchestrator says which.
                node_url = self._current_node_url(job["job_id"])
                if node_url is None:
                    stats.outcome = "the job has ended"
                    return stats
            if stats.outcome:
                return stats
        stats.outcome = "gave up: time limit reached"
        return stats

    def _current_node_url(self, job_id: str) -> str | None:
        open_jobs = {job["job_id"]: job for job in self.open_jobs()}
        return open_jobs[job_id]["node_url"] if job_id in open_jobs else None

    def _take_one_cycle(self, node_url: str, stats: ParticipationStats, seed: int, give_up_at: float) -> None:
        cycle = self._call(
            "POST", f"{node_url}/cycle", json={"availability": self._availability.model_dump()}
        ).json()
        if cycle["status"] == "finished":
            stats.outcome = cycle["reason"]
            return
        if cycle["status"] == "rejected":
            stats.rejections += 1
            time.sleep(min(cycle["retry_after"], max(give_up_at - time.monotonic(), 0)))
            return
        try:
            self._train_and_report(node_url, cycle, seed + stats.rounds_trained)
        except DeviceError as exc:
            if exc.status not in _ROUND_MOVED_ON:
                raise
            stats.late_reports += 1  # the round closed while this device trained
            return
        stats.rounds_trained += 1
        stats.rounds.append(cycle["round"])

    def _train_and_report(self, node_url: str, cycle: dict, seed: int) -> None:
        architecture = ArchitectureSpec.model_validate(cycle["architecture"])
        model = architecture.build()
        # The model URL is a presigned S3 URL: no bearer token goes with it.
        download = self._http.get(cycle["model_url"])
        if download.is_error:
            raise DeviceError(f"model download failed: {download.status_code}")
        weights = decode(download.content, TensorSignature.of(model), what="the round's model")
        data = self._data.shaped(architecture.input_shape)
        result = train_locally(
            model, weights, data, ClientConfig.model_validate(cycle["client_config"]), seed
        )
        receipt = self._call(
            "PUT",
            f"{node_url}/reports/{cycle['request_key']}",
            params={"num_samples": result.num_samples, "loss": result.loss, "accuracy": result.accuracy},
            content=encode(result.delta),
        )
        log.debug("device %s reported round %s: %s", self.device_id, cycle["round"], receipt.json())

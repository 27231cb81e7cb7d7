"""Benchmark what uploads nobody asked for cost an FL node's memory, against the same uploads sent by
the device that holds the slot.

A node process is started on loopback for a job whose model is a 200 MB safetensors file (one
linear layer of 50,000,000 weights, the most a model may have), over the in-memory store, so no
emulator is needed. Three uploads of
200 MB are sent without a token, then the same three bytes with a valid device token and the
device's own request key, in the same run. The node's RSS is read from /proc before and after each
set, and sampled while it runs for its peak, so the second set is the baseline: what reading such a
body costs the node. (The bodies are not safetensors files, so the node answers 422 once it
has read them; nothing is counted.)

Target: the uploads without a token raise the node's peak RSS by at most 32 MiB (the node answers
401 before reading them, and closes the connection). Prints the figures, rewrites its section of
docs/benchmarks.md and exits 1 if the target is missed. Linux only: memory is read from /proc.

Run: .venv/bin/python bench/node_memory.py
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from pydantic import SecretStr
from report import Target, cpu_model, markdown_table, publish, verdicts

from cohort.domain.records import ModelRecord, ModelStatus, TrainingJobRecord
from cohort.domain.weights import TensorSignature, encode
from cohort.federated.memory_store import MemoryNodeStore
from cohort.federated.node_store import at_time
from cohort.settings import Settings
from cohort.web.auth import DeviceIdentity, DeviceTokens

JOB_ID, DATASET_ID, MODEL_ID = "bench-job", "bench-app", "bench-model"
# One linear layer of 50,000,000 float32 weights, the most a model may have: a 200 MB file, so that
# a 200 MB body is within the model's own limit.
INPUTS, OUTPUTS = 5_000, 10_000
ARCHITECTURE = {
    "input_shape": [INPUTS],
    "num_classes": OUTPUTS,
    "layers": [{"type": "Linear", "in_features": INPUTS, "out_features": OUTPUTS, "bias": False}],
}
UPLOADS, UPLOAD_BYTES = 3, 200_000_000
CHUNK_BYTES = 1024 * 1024
TARGET_MIB = 32
MIB = 1024 * 1024
SAMPLE_SECONDS = 0.005


def _settings(secret: str) -> Settings:
    return Settings(token_secret=SecretStr(secret))


# -- the node process ------------------------------------------------------------------------------------


def serve(port: int) -> None:
    """Run the node of one pending job over the in-memory store until killed."""
    import uvicorn

    from cohort.domain.architecture import parse_architecture
    from cohort.federated.node_app import create_node_app

    weights = TensorSignature.of(parse_architecture(ARCHITECTURE).build()).zeros()
    key = f"models/{MODEL_ID}/weights.safetensors"
    start = time.time()
    job = TrainingJobRecord(
        JOB_ID,
        owner_id="bench",
        model_id=MODEL_ID,
        dataset_id=DATASET_ID,
        client_config={},
        server_config={"rounds": 1, "min_reports": 4, "max_reports": 4, "round_deadline_seconds": 3600},
        global_weights_key=key,
        created_at=at_time(start),
        updated_at=at_time(start),
    )
    model = ModelRecord(
        MODEL_ID,
        owner_id="bench",
        name="wide-linear",
        architecture=ARCHITECTURE,
        weights_key=key,
        status=ModelStatus.READY,
        created_at=at_time(start),
    )
    store = MemoryNodeStore(job, model, {key: encode(weights)})
    del weights
    app = create_node_app(JOB_ID, store=store)  # settings from the environment the parent gave it
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the client ------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


class PeakRss:
    """The highest RSS of a process while the block runs, sampled every few milliseconds (its VmHWM
    still holds the peak of its start-up)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._stop = threading.Event()
        self.peak = 0

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, _rss(self._pid))

    def __enter__(self) -> PeakRss:
        self.peak = _rss(self._pid)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._sampler.join()


def _body() -> Iterator[bytes]:
    chunk = b"\x07" * CHUNK_BYTES
    for start in range(0, UPLOAD_BYTES, CHUNK_BYTES):
        yield chunk[: min(CHUNK_BYTES, UPLOAD_BYTES - start)]


def _upload(client: httpx.Client, url: str, headers: dict[str, str]) -> str:
    """Send one 200 MB body with its length declared; the answer's status, or why none came."""
    params = {"num_samples": 1, "loss": 0.5, "accuracy": 0.5}
    headers = {**headers, "Content-Length": str(UPLOAD_BYTES)}
    try:
        return str(client.put(url, params=params, content=_body(), headers=headers).status_code)
    except httpx.TransportError as exc:  # the node may close the connection before the client is done
        return f"closed ({type(exc).__name__})"


def _wait_until_up(client: httpx.Client, base: str, node: subprocess.Popen) -> None:
    give_up_at = time.monotonic() + 120
    while time.monotonic() < give_up_at:
        if node.poll() is not None:
            raise RuntimeError(f"the node process exited with {node.returncode}")
        try:
            if client.get(f"{base}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError("the node did not start within 120 s")


def measure() -> dict[str, dict[str, object]]:
    secret = secrets.token_urlsafe(32)
    tokens = DeviceTokens(_settings(secret))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "COHORT_TOKEN_SECRET": secret}
    node = subprocess.Popen([sys.executable, __file__, "--serve", str(port)], env=env)
    results: dict[str, dict[str, object]] = {}
    try:
        with httpx.Client(timeout=300) as client:
            _wait_until_up(client, base, node)
            devices = [f"phone-{i}" for i in range(UPLOADS)]
            bearer = {
                d: {"Authorization": f"Bearer {tokens.issue(DeviceIdentity(d, DATASET_ID))}"} for d in devices
            }
            cycle = {"availability": {"battery": 0.9, "charging": True, "network": "wifi"}}
            keys = {
                d: client.post(f"{base}/jobs/{JOB_ID}/cycle", json=cycle, headers=bearer[d]).json()[
                    "request_key"
                ]
                for d in devices
            }
            for name, headers in (
                ("without a token", lambda d: {}),
                ("with a valid token and key", bearer.get),
            ):
                before = _rss(node.pid)
                with PeakRss(node.pid) as during:
                    answers = [
                        _upload(client, f"{base}/jobs/{JOB_ID}/reports/{keys[d]}", headers(d))
                        for d in devices
                    ]
                    time.sleep(0.5)  # the node finishes with the last body
                results[name] = {
                    "answers": answers,
                    "before": before,
                    "peak": during.peak,
                    "after": _rss(node.pid),
                }
    finally:
        node.terminate()
        node.wait(timeout=30)
    return results


def render(results: dict[str, dict[str, object]], targets: list[Target], load: float) -> str:
    def mib(value: int) -> str:
        return f"{value / MIB:,.0f} MiB"

    rows = []
    for name, result in results.items():
        answers = sorted(set(result["answers"]))
        rows.append(
            [
                name,
                ", ".join(f"{a} x{result['answers'].count(a)}" for a in answers),
                mib(result["before"]),
                mib(result["peak"]),
                mib(result["after"]),
                f"{(result['peak'] - result['before']) / MIB:+,.0f} MiB",
            ]
        )
    table = markdown_table(
        [
            f"{UPLOADS} uploads of {UPLOAD_BYTES / 1e6:.0f} MB",
            "answers",
            "RSS before",
            "peak",
            "RSS after",
            "peak rise",
        ],
        rows,
        numeric_from=2,
    )
    today = datetime.date.today().isoformat()
    return (
        "## FL node memory under unauthenticated uploads (`bench/node_memory.py`)\n\n"
        f"Measured {today} on {cpu_model()}, {os.cpu_count()} cores, load average {load:.1f}, Python "
        f"{sys.version.split()[0]}. A node process on loopback for a job whose model is a "
        f"{INPUTS * OUTPUTS * 4 / 1e6:.0f} MB safetensors file; three {UPLOAD_BYTES / 1e6:.0f} MB bodies "
        "sent without a token, then the same three with each device's valid token and request key, in one "
        "run. "
        f"RSS is the node process's, from /proc; its peak is sampled every {SAMPLE_SECONDS * 1000:.0f} ms "
        "while each set of uploads runs.\n\n"
        f"{table}\n\n"
        "The node checks the token and the request key before it reads a byte of a report, and answers a "
        "refused one with `Connection: close`, so the body is never received; the device that holds the "
        "slot has its body read, up to the size of the model's own file.\n\n"
        f"{verdicts(targets)}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    load = os.getloadavg()[0]
    results = measure()
    unauthenticated = results["without a token"]
    rise = unauthenticated["peak"] - unauthenticated["before"]
    refused = all(answer != "202" for answer in unauthenticated["answers"])
    targets = [
        Target(
            f"Peak RSS rise under {UPLOADS} unauthenticated uploads <= {TARGET_MIB} MiB",
            f"{rise / MIB:+,.0f} MiB",
            rise <= TARGET_MIB * MIB and refused,
        )
    ]
    return publish("node_memory", render(results, targets, load), targets)


if __name__ == "__main__":
    sys.exit(main())

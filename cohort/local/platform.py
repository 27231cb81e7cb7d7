"""``cohort up``: the emulator, the provisioned resources, the orchestrator, the notification
pump, the datasets stream pump and the evaluator, as child processes.

All of them bind to 127.0.0.1. The state file says what runs where, for
``cohort status`` and ``cohort down``; it holds no secret.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from cohort import aws
from cohort.domain.records import bind_tables
from cohort.local.provision import provision
from cohort.processes import free_loopback_port, terminate
from cohort.settings import get_settings

STATE_FILE = "state.json"
_STARTUP_TIMEOUT = 60.0
# The emulator accepts any credentials; these say so and are no secret.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local-emulator", "AWS_SECRET_ACCESS_KEY": "local-emulator"}


@dataclass
class PlatformState:
    emulator_url: str
    orchestrator_url: str
    region: str
    user_pool_id: str
    user_pool_client_id: str
    pids: dict[str, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    outbox: str = ""  # every email sent, as .eml files

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, home: Path) -> PlatformState | None:
        path = home / STATE_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else None


class LocalPlatform:
    """Starts everything on ``start()`` and stops all of it, in reverse, on ``stop()``."""

    def __init__(self, home: Path, emulator_port: int | None = None, orchestrator_port: int | None = None):
        self.home = home
        self._emulator_port = emulator_port or free_loopback_port()
        self._orchestrator_port = orchestrator_port or free_loopback_port()
        self._children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.state: PlatformState | None = None

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def dataset_failures(self) -> Path:
        """Dataset stream records the dataset function kept failing on, one batch per line."""
        return self.log_dir / "dataset-generation-failures.jsonl"

    def start(self) -> PlatformState:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        emulator_url = f"http://127.0.0.1:{self._emulator_port}"
        self._spawn(
            "emulator",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self._emulator_port)],
            os.environ.copy(),
        )
        _wait_for(f"{emulator_url}/moto-api/", self._children[-1], "the AWS emulator")

        use_emulator(emulator_url, os.environ.get("AWS_REGION", "us-east-1"))
        pool = provision(get_settings())
        os.environ.update(
            {
                "COHORT_USER_POOL_ID": pool.pool_id,
                "COHORT_USER_POOL_CLIENT_IDS": json.dumps([pool.client_id]),
                # A fresh key each run, handed only to child processes' environments.
                "COHORT_TOKEN_SECRET": secrets.token_urlsafe(48),
                "COHORT_LAUNCHER": "local",
                # Also where the functions run in this process (the signup trigger) write their logs.
                "COHORT_LOG_DIR": str(self.log_dir.resolve()),
            }
        )
        aws.reset_clients()

        orchestrator_url = f"http://127.0.0.1:{self._orchestrator_port}"
        self._spawn(
            "orchestrator",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "cohort.services.orchestrator:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self._orchestrator_port),
                "--log-level",
                "warning",
            ],
            {**os.environ, "COHORT_LOG_DIR": str(self.log_dir.resolve())},
        )
        _wait_for(f"{orchestrator_url}/healthz", self._children[-1], "the orchestrator")
        self._spawn(
            "notifications",
            [sys.executable, "-m", "cohort.local.notification_pump", "--outbox", str(self.outbox.resolve())],
            os.environ.copy(),
        )
        self._spawn(
            "stream-pump",
            [
                sys.executable,
                "-m",
                "cohort.local.stream_pump",
                "--failures",
                str(self.dataset_failures.resolve()),
            ],
            os.environ.copy(),
        )
        self._spawn(
            "evaluator",
            # Short polls, so a stop is noticed within the grace period; on AWS it polls 20 s.
            [sys.executable, "-m", "cohort.evaluation.worker", "--wait-seconds", "1"],
            os.environ.copy(),
        )

        self.state = PlatformState(
            emulator_url=emulator_url,
            orchestrator_url=orchestrator_url,
            region=get_settings().aws_region,
            user_pool_id=pool.pool_id,
            user_pool_client_id=pool.client_id,
            pids={"platform": os.getpid(), **{name: child.pid for name, child in self._children}},
            outbox=str(self.outbox.resolve()),
        )
        self.state.save(self.home)
        return self.state

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._children.append((name, child))

    def stop(self) -> None:
        for _, child in reversed(self._children):
            terminate(child, grace_seconds=15)
        self._children.clear()
        (self.home / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> PlatformState:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *_: object) -> None:
        self.stop()


def use_emulator(emulator_url: str, region: str) -> None:
    """Point this process's AWS clients and records at the local platform."""
    os.environ.update(
        {
            **EMULATOR_CREDENTIALS,
            "AWS_ENDPOINT_URL": emulator_url,
            "AWS_REGION": region,
            "COHORT_STAGE": "local",
            "COHORT_NAMESPACE": "local",
        }
    )
    aws.reset_clients()
    bind_tables(get_settings())


def _wait_for(url: str, child: tuple[str, subprocess.Popen[bytes]], what: str) -> None:
    name, process = child
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}; see the log {name}.log")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {_STARTUP_TIMEOUT:.0f}s")

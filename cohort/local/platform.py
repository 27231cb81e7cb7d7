"""``cohort up``: the emulator, the provisioned resources, the orchestrator, the notification
pump, the datasets stream pump and the evaluator, as child processes; and, once the dashboard
is built, the Cognito bridge and the website server that serves it.

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
from cohort.local.website import origin_of, site_is_built
from cohort.processes import free_loopback_port, terminate
from cohort.settings import get_settings

STATE_FILE = "state.json"
_STARTUP_TIMEOUT = 60.0
# The emulator accepts any credentials; these say so and are no secret.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local-emulator", "AWS_SECRET_ACCESS_KEY": "local-emulator"}
# What the bridge and the website server never need, so their environments do not hold it.
_NOT_FOR_THE_SITE = ("COHORT_TOKEN_SECRET",)


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
    # The dashboard's address (ending in '/') and the Cognito bridge it signs up through;
    # both empty when the site is not built.
    website_url: str = ""
    cognito_url: str = ""

    @property
    def website_origin(self) -> str:
        """What a browser on the dashboard sends as ``Origin``; empty when the site is not built."""
        return origin_of(self.website_url) if self.website_url else ""

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, home: Path) -> PlatformState | None:
        path = home / STATE_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else None


class LocalPlatform:
    """Starts everything on ``start()`` and stops all of it, in reverse, on ``stop()``."""

    def __init__(
        self,
        home: Path,
        emulator_port: int | None = None,
        orchestrator_port: int | None = None,
        website_port: int | None = None,
        website_dir: Path | None = None,
    ):
        self.home = home
        # All at once, so the orchestrator can be told the website's origin before either starts.
        self._emulator_port, self._orchestrator_port, self._website_port, self._cognito_port = (
            _distinct_ports(emulator_port, orchestrator_port, website_port, None)
        )
        self.website_dir = (website_dir or Path(get_settings().website_dir)).resolve()
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

    @property
    def website_built(self) -> bool:
        return site_is_built(self.website_dir)

    def start(self) -> PlatformState:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        emulator_url = f"http://127.0.0.1:{self._emulator_port}"
        orchestrator_url = f"http://127.0.0.1:{self._orchestrator_port}"
        website_url = f"http://127.0.0.1:{self._website_port}/" if self.website_built else ""
        cognito_url = f"http://127.0.0.1:{self._cognito_port}" if self.website_built else ""
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
                # The dashboard's origin: the orchestrator and the bridge answer CORS for it alone.
                "COHORT_ALLOWED_ORIGINS": json.dumps([origin_of(website_url)] if website_url else []),
            }
        )
        aws.reset_clients()

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
        if website_url:
            self._start_website(orchestrator_url, website_url, cognito_url)

        self.state = PlatformState(
            emulator_url=emulator_url,
            orchestrator_url=orchestrator_url,
            region=get_settings().aws_region,
            user_pool_id=pool.pool_id,
            user_pool_client_id=pool.client_id,
            pids={"platform": os.getpid(), **{name: child.pid for name, child in self._children}},
            outbox=str(self.outbox.resolve()),
            website_url=website_url,
            cognito_url=cognito_url,
        )
        self.state.save(self.home)
        return self.state

    def _start_website(self, orchestrator_url: str, website_url: str, cognito_url: str) -> None:
        """The Cognito bridge the dashboard signs up through, then the server of the dashboard."""
        site_env = {name: value for name, value in os.environ.items() if name not in _NOT_FOR_THE_SITE}
        self._spawn(
            "cognito-bridge",
            [
                sys.executable,
                "-m",
                "cohort.local.cognito_bridge",
                "--port",
                str(self._cognito_port),
                "--outbox",
                str(self.outbox.resolve()),
            ],
            site_env,
        )
        _wait_for(f"{cognito_url}/healthz", self._children[-1], "the Cognito bridge")
        self._spawn(
            "website",
            [sys.executable, "-m", "cohort.local.website", "--port", str(self._website_port)],
            {
                **site_env,
                "COHORT_WEBSITE_DIR": str(self.website_dir),
                "COHORT_WEBSITE_API_URL": orchestrator_url,
                "COHORT_WEBSITE_COGNITO_ENDPOINT": cognito_url,
            },
        )
        _wait_for(website_url, self._children[-1], "the website server")

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


def _distinct_ports(*requested: int | None) -> list[int]:
    """The ports asked for, and a free loopback port for each one not given, no two alike."""
    taken = {port for port in requested if port}
    ports = []
    for port in requested:
        ports.append(port or _free_port_not_in(taken))
        taken.add(ports[-1])
    return ports


def _free_port_not_in(taken: set[int]) -> int:
    for _ in range(100):  # the OS may hand back a port it has just handed out, once in a while
        port = free_loopback_port()
        if port not in taken:
            return port
    raise RuntimeError("no free loopback port found")


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

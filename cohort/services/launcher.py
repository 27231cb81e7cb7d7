"""Starting one FL node per training job.

The orchestrator depends only on :class:`Launcher`; ``cohort up`` uses local
processes and AWS uses ECS RunTask (:mod:`cohort.services.ecs_launcher`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from cohort.processes import free_loopback_port, terminate


@dataclass(frozen=True)
class LaunchedNode:
    url: str  # what devices call: the base of the job's routes
    ref: str  # what the launcher needs to stop it


class Launcher(Protocol):
    def launch(self, job_id: str) -> LaunchedNode: ...

    def stop(self, job_id: str, ref: str) -> None: ...


class LocalProcessLauncher:
    """Each node is a child process on loopback; its logs go to ``log_dir``."""

    def __init__(self, log_dir: Path, startup_timeout: float = 60.0) -> None:
        self._log_dir = log_dir
        self._startup_timeout = startup_timeout
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def launch(self, job_id: str) -> LaunchedNode:
        port = free_loopback_port()
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self._log_dir / f"fl-node-{job_id}.log").open("ab")
        command = [sys.executable, "-m", "cohort.federated.node_app", "--job-id", job_id, "--port", str(port)]
        child = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=os.environ.copy())
        log_file.close()
        self._children[job_id] = child
        base = f"http://127.0.0.1:{port}"
        self._wait_until_healthy(child, base, job_id)
        return LaunchedNode(url=f"{base}/jobs/{job_id}", ref=str(child.pid))

    def _wait_until_healthy(self, child: subprocess.Popen[bytes], base: str, job_id: str) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise RuntimeError(
                    f"the FL node for job {job_id} exited with code {child.returncode}; "
                    f"see {self._log_dir / f'fl-node-{job_id}.log'}"
                )
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop(job_id, str(child.pid))
        raise RuntimeError(f"the FL node for job {job_id} did not become healthy in {self._startup_timeout}s")

    def stop(self, job_id: str, ref: str) -> None:
        child = self._children.pop(job_id, None)
        if child is not None:
            terminate(child, grace_seconds=10)

    def stop_all(self) -> None:
        for job_id in list(self._children):
            self.stop(job_id, "")

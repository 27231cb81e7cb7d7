"""Starting, checking and stopping one FL node per training job.

The orchestrator depends only on :class:`Launcher`; ``cohort up`` uses local
processes and AWS uses ECS RunTask (:mod:`cohort.services.ecs_launcher`). The
supervisor (:mod:`cohort.services.supervisor`) calls all three.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import httpx

from cohort.processes import free_loopback_port, terminate


@dataclass(frozen=True)
class LaunchedNode:
    url: str  # what devices call: the base of the job's routes
    ref: str  # what the launcher needs to stop it


class Liveness(StrEnum):
    BOOTING = "booting"  # started, not serving yet
    HEALTHY = "healthy"
    UNREACHABLE = "unreachable"  # it runs, as far as can be seen, but does not answer
    DEAD = "dead"  # its process exited, or its task stopped


@dataclass(frozen=True)
class NodeCheck:
    liveness: Liveness
    detail: str = ""  # why it is not healthy, in words for the job's owner


class Launcher(Protocol):
    def launch(self, job_id: str, number: int) -> LaunchedNode:
        """Start the job's ``number``-th node and return once devices can be sent to it.

        A call repeated with the same number may return the node the first call started; a new
        number is always a new node.
        """
        ...

    def check(self, job_id: str, node: LaunchedNode) -> NodeCheck: ...

    def stop(self, job_id: str, ref: str) -> None: ...


class LocalProcessLauncher:
    """Each node is a child process on loopback; its logs go to ``log_dir``."""

    def __init__(self, log_dir: Path, startup_timeout: float = 60.0, health_timeout: float = 2.0) -> None:
        self._log_dir = log_dir
        self._startup_timeout = startup_timeout
        self._health_timeout = health_timeout
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def launch(self, job_id: str, number: int) -> LaunchedNode:
        previous = self._children.pop(job_id, None)
        if previous is not None:  # one node per job, always
            terminate(previous, grace_seconds=10)
        port = free_loopback_port()
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_file = self._log_path(job_id).open("ab")
        log_file.write(f"--- launch {number} of the FL node for job {job_id}, on port {port}\n".encode())
        log_file.flush()
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
                    f"see {self._log_path(job_id)}"
                )
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop(job_id, str(child.pid))
        raise RuntimeError(f"the FL node for job {job_id} did not become healthy in {self._startup_timeout}s")

    def check(self, job_id: str, node: LaunchedNode) -> NodeCheck:
        """Dead once its process has exited; otherwise healthy if its /healthz answers in time.

        A node this launcher did not start (the orchestrator was restarted) is judged by /healthz alone.
        """
        child = self._children.get(job_id)
        if child is not None and child.poll() is not None:
            exited = f"its process exited with code {child.returncode}"
            return NodeCheck(Liveness.DEAD, f"{exited}; see {self._log_path(job_id)}")
        base = node.url.removesuffix(f"/jobs/{job_id}")
        try:
            answer = httpx.get(f"{base}/healthz", timeout=self._health_timeout)
        except httpx.TransportError as exc:
            return NodeCheck(Liveness.UNREACHABLE, f"its health check failed: {type(exc).__name__}")
        if answer.status_code != 200:
            return NodeCheck(Liveness.UNREACHABLE, f"its health check answered {answer.status_code}")
        return NodeCheck(Liveness.HEALTHY)

    def _log_path(self, job_id: str) -> Path:
        return self._log_dir / f"fl-node-{job_id}.log"

    def stop(self, job_id: str, ref: str) -> None:
        child = self._children.pop(job_id, None)
        if child is not None:
            terminate(child, grace_seconds=10)

    def stop_all(self) -> None:
        for job_id in list(self._children):
            self.stop(job_id, "")

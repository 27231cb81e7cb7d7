"""Run a function of ``lambdas/`` in this process, the way the Lambda runtime would.

Each handler module is imported once, with the environment the CDK gives its
function (service name, metrics namespace), and called with a real event and a
context object. Its Powertools logs go to ``<log dir>/lambda-<name>.log``, like
every other service of the local platform; metrics are not published locally.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from cohort.settings import get_settings

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
# What the functions stack sets on every function; the same names and values here.
METRICS_NAMESPACE = "Cohort"
_TIMEOUT_SECONDS = 60.0
_SERVICE = "POWERTOOLS_SERVICE_NAME"
Handler = Callable[[dict[str, Any], Any], Any]
_handlers: dict[str, Handler] = {}
_lock = threading.Lock()  # one import per function, even when two threads invoke it first


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_seconds: float = _TIMEOUT_SECONDS
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{get_settings().aws_region}:000000000000:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000), 0)


def invoke(name: str, event: dict[str, Any]) -> Any:
    """Call ``lambdas/<name>/handler.py``'s handler with ``event``; its exceptions propagate."""
    return handler(name)(event, LocalContext(function_name=f"cohort-local-{name}"))


def handler(name: str) -> Handler:
    """The function's handler, its module imported on first use (a cold start)."""
    with _lock:
        if name not in _handlers:
            _handlers[name] = _load(name).handler
        return _handlers[name]


def _load(name: str) -> ModuleType:
    path = LAMBDAS / name / "handler.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the local platform runs from a checkout of the repository"
        )
    module_name = f"cohort_lambda_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    # Nothing collects metrics locally: Powertools checks this when it flushes them.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    # The service name is read when the module creates its Logger and Metrics, and differs
    # per function, while every handler shares this process: so it is set for the import only.
    saved = os.environ.get(_SERVICE)
    os.environ[_SERVICE] = name
    try:
        sys.modules[module_name] = module  # pydantic resolves the module's annotations through it
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        if saved is None:
            os.environ.pop(_SERVICE, None)
        else:
            os.environ[_SERVICE] = saved
    _log_to_file(name)
    return module


def _log_to_file(name: str) -> None:
    """Send the handler's Powertools logs, which go to stdout on Lambda, to its log file instead."""
    log_dir = Path(get_settings().log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    service_logger = logging.getLogger(name)
    for stdout_handler in list(service_logger.handlers):
        file_handler = logging.FileHandler(log_dir / f"lambda-{name}.log", delay=True)
        file_handler.setFormatter(stdout_handler.formatter)  # keeps Powertools' structured JSON
        service_logger.removeHandler(stdout_handler)
        service_logger.addHandler(file_handler)

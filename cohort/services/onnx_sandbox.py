"""ONNX import in a child process with hard limits on memory, CPU time, wall time and files.

The parent hands the file over on stdin and reads back, on stdout, a manifest
(the architecture document and the conversion notes) followed by the weights in
safetensors. The child holds no credentials (its environment is emptied), may
not create or grow a file, and is killed at its wall-time limit; whatever it
returns is validated by the caller as any upload is. A file that is malformed,
unsupported or too costly to convert fails with a message saying so.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

from cohort.domain.errors import Busy, InvalidInput
from cohort.settings import Settings

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<Q")  # the manifest's length, before the manifest and the weights
_EXIT_INVALID, _EXIT_OUT_OF_MEMORY, _EXIT_FAILED = 2, 3, 4


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int  # address space the conversion may add to the child's own
    cpu_seconds: int
    wall_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> SandboxLimits:
        return cls(
            settings.onnx_import_memory_bytes,
            settings.onnx_import_cpu_seconds,
            settings.onnx_import_wall_seconds,
        )


@dataclass(frozen=True)
class ConvertedFile:
    architecture: object  # an ArchitectureSpec document, not yet validated
    notes: list[str]
    weights: bytes  # safetensors, not yet validated


class _ImportSlots:
    """How many conversions may run at once in this process, each holding its own memory limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphore: threading.BoundedSemaphore | None = None

    def get(self, size: int) -> threading.BoundedSemaphore:
        with self._lock:
            if self._semaphore is None:
                self._semaphore = threading.BoundedSemaphore(size)
            return self._semaphore


_import_slots = _ImportSlots()


def convert_onnx(data: bytes, settings: Settings) -> ConvertedFile:
    """Convert an ONNX file in a limited child; at most ``max_concurrent_imports`` run at once."""
    limits = SandboxLimits.of(settings)
    slots = _import_slots.get(settings.max_concurrent_imports)
    if not slots.acquire(timeout=limits.wall_seconds):
        raise Busy("other model imports are running; try the commit again in a minute")
    try:
        return run_child(data, limits)
    finally:
        slots.release()


def run_child(data: bytes, limits: SandboxLimits) -> ConvertedFile:
    command = [
        sys.executable,
        "-P",  # nothing from the working directory on sys.path
        "-m",
        __name__,
        str(limits.memory_bytes),
        str(limits.cpu_seconds),
    ]
    environment = {"PATH": os.environ.get("PATH", ""), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    if "PYTHONPATH" in os.environ:
        environment["PYTHONPATH"] = os.environ["PYTHONPATH"]
    try:
        child = subprocess.run(
            command,
            input=data,
            capture_output=True,
            timeout=limits.wall_seconds,
            env=environment,
            cwd="/",
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(
            f"the ONNX import took longer than {limits.wall_seconds:g} s and was stopped; "
            "import a smaller model"
        ) from None
    if child.returncode == 0:
        return _read_output(child.stdout)
    raise _failure(child.returncode, child.stderr.decode(errors="replace").strip(), limits)


def _failure(returncode: int, stderr: str, limits: SandboxLimits) -> InvalidInput:
    reason = stderr.splitlines()[-1] if stderr else ""
    if returncode == _EXIT_INVALID:
        return InvalidInput(f"the ONNX model cannot be imported: {reason}")
    if returncode in (_EXIT_OUT_OF_MEMORY, -signal.SIGKILL, -signal.SIGSEGV, -signal.SIGABRT):
        return InvalidInput(
            f"the ONNX import needed more than {limits.memory_bytes / 2**20:,.0f} MiB of memory "
            "and was stopped; import a smaller model"
        )
    if returncode == -signal.SIGXCPU:
        return InvalidInput(
            f"the ONNX import used more than {limits.cpu_seconds} s of CPU and was stopped; "
            "import a smaller model"
        )
    log.warning("ONNX import child exited with %s: %s", returncode, stderr[-2000:])
    return InvalidInput(f"the ONNX converter failed on this file ({reason or f'exit {returncode}'})")


def _read_output(output: bytes) -> ConvertedFile:
    (length,) = _FRAME.unpack_from(output)
    manifest = json.loads(output[_FRAME.size : _FRAME.size + length])
    return ConvertedFile(manifest["architecture"], manifest["notes"], output[_FRAME.size + length :])


# -- the child ----------------------------------------------------------------------------
def _limit_self(memory_bytes: int, cpu_seconds: int) -> None:
    """Cap this process before it reads the untrusted file; its own imports are already done."""
    with open("/proc/self/statm") as statm:
        address_space = int(statm.read().split()[0]) * resource.getpagesize()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_used = int(usage.ru_utime + usage.ru_stime) + 1
    resource.setrlimit(resource.RLIMIT_AS, (address_space + memory_bytes,) * 2)
    # SIGXCPU at the soft limit; the hard limit's SIGKILL a second later only if that is ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_used + cpu_seconds, cpu_used + cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_main(memory_bytes: int, cpu_seconds: int) -> int:
    from safetensors.numpy import save

    from cohort.domain.onnx_import import convert

    _limit_self(memory_bytes, cpu_seconds)
    try:
        converted = convert(sys.stdin.buffer.read())
        weights = save(converted.weights)
    except InvalidInput as exc:
        print(exc.message, file=sys.stderr)
        return _EXIT_INVALID
    except MemoryError:
        return _EXIT_OUT_OF_MEMORY
    except Exception as exc:  # a parser bug on a crafted file is still that file's failure
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return _EXIT_FAILED
    manifest = json.dumps({"architecture": converted.architecture, "notes": converted.notes}).encode()
    sys.stdout.buffer.write(_FRAME.pack(len(manifest)) + manifest + weights)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1]), int(sys.argv[2])))

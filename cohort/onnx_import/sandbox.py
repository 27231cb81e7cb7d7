"""ONNX import in a child process with hard limits on memory, CPU time, wall time and files.

The parent hands the file over as stdin and reads back, on stdout, a manifest
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
import tempfile
import threading
from dataclasses import dataclass
from typing import IO

from cohort.domain.errors import Busy, InvalidInput
from cohort.settings import Settings

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<QQ")  # the lengths of the manifest and of the weights, which follow
_MAX_MESSAGE = 4096  # of an error, so the child's stderr never fills its pipe
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


def start_child(source: IO[bytes], limits: SandboxLimits) -> subprocess.Popen[bytes]:
    """The limited child, converting the file it reads from ``source``; the output is on its stdout."""
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
    return subprocess.Popen(
        command, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, cwd="/"
    )


def run_child(data: bytes, limits: SandboxLimits) -> ConvertedFile:
    """Convert ``data`` in the limited child and read back what it made of it."""
    # The file goes in as a file: the child reads it in one call into one buffer, and the output
    # comes back length-prefixed, so each part is read straight into a buffer of its own size.
    with tempfile.TemporaryFile() as source:
        source.write(data)
        source.seek(0)
        child = start_child(source, limits)
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        child.kill()

    deadline = threading.Timer(limits.wall_seconds, stop)
    deadline.start()
    try:
        with child:
            # The child cannot have made more than its memory limit holds.
            output = _read_output(child.stdout, max_bytes=limits.memory_bytes)
            stderr = child.stderr.read().decode(errors="replace").strip()  # bounded by the child
            returncode = child.wait()
    finally:
        deadline.cancel()
    if returncode == 0 and output is not None:
        return output
    if timed_out.is_set():
        raise InvalidInput(
            f"the ONNX import took longer than {limits.wall_seconds:g} s and was stopped; "
            "import a smaller model"
        )
    raise _failure(returncode, stderr, limits)


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


def _read_output(stream: IO[bytes], *, max_bytes: int) -> ConvertedFile | None:
    """The child's output, or None if it ended without writing all of it."""
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    manifest_length, weights_length = _FRAME.unpack(header)
    if manifest_length + weights_length > max_bytes:
        return None
    manifest, weights = stream.read(manifest_length), stream.read(weights_length)
    if len(manifest) < manifest_length or len(weights) < weights_length:
        return None
    document = json.loads(manifest)
    return ConvertedFile(document["architecture"], document["notes"], weights)


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

    from cohort.onnx_import.convert import convert

    _limit_self(memory_bytes, cpu_seconds)
    try:
        converted = convert(sys.stdin.buffer.read())
        weights = save(converted.weights)
        converted.weights.clear()
    except InvalidInput as exc:
        print(exc.message[:_MAX_MESSAGE], file=sys.stderr)
        return _EXIT_INVALID
    except MemoryError:
        return _EXIT_OUT_OF_MEMORY
    except Exception as exc:  # a parser bug on a crafted file is still that file's failure
        print(f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE], file=sys.stderr)
        return _EXIT_FAILED
    manifest = json.dumps({"architecture": converted.architecture, "notes": converted.notes}).encode()
    for part in (_FRAME.pack(len(manifest), len(weights)), manifest, weights):  # not joined: no copy
        sys.stdout.buffer.write(part)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1]), int(sys.argv[2])))

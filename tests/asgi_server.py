"""Serve an ASGI app over real HTTP on a loopback port, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from cohort.processes import free_loopback_port


@contextmanager
def serving(app: ASGIApp, start_timeout: float = 10.0, lifespan: str = "auto") -> Iterator[str]:
    """The app's base URL while the block runs; the server stops after it.

    ``lifespan="off"`` skips the app's start-up and shut-down (its background tasks).
    """
    port = free_loopback_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"asgi-{port}", daemon=True)
    thread.start()
    give_up_at = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > give_up_at:
            raise RuntimeError(f"the app did not start serving on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

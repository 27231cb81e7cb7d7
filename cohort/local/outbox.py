"""The local platform's outbox: every email sent, as an ``.eml`` file a person can open."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from cohort.notify.messages import MAX_NOTIFICATION_ID
from cohort.notify.sending import SentEmail

# Safe as a file name: the characters notification ids are restricted to ('.', '_', '-', letters, digits).
_SAFE_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NOTIFICATION_ID - 1}}}$")


class Outbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"{name!r} is not a safe outbox file name")
        return self.folder / f"{name}.eml"

    def __call__(self, sent: SentEmail) -> None:
        """A sink for :func:`cohort.notify.sending.add_sink`."""
        self.write(sent.notification_id, sent.raw)

    def write(self, name: str, raw: bytes) -> Path:
        """Put one email (raw MIME) in the outbox as ``<name>.eml``: written whole, then renamed."""
        path = self.path(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(raw)
        os.replace(partial, path)
        return path

    def wait_for(self, notification_id: str, timeout: float) -> Path:
        """The email's file once it is there; TimeoutError if it has not arrived in time."""
        path = self.path(notification_id)
        give_up_at = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > give_up_at:
                raise TimeoutError(f"no email {notification_id} in {self.folder} after {timeout:.0f}s")
            time.sleep(0.1)
        return path

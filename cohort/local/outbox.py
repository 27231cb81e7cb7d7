"""The local platform's outbox: every email sent, as an ``.eml`` file a person can open."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cohort.notify.sending import SentEmail


class Outbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, notification_id: str) -> Path:
        # Notification ids are restricted to letters, digits, '.', '_' and '-': safe as file names.
        return self.folder / f"{notification_id}.eml"

    def __call__(self, sent: SentEmail) -> None:
        """A sink for :func:`cohort.notify.sending.add_sink`: written whole, then renamed into place."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(sent.notification_id)
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(sent.raw)
        os.replace(partial, path)

    def wait_for(self, notification_id: str, timeout: float) -> Path:
        """The email's file once it is there; TimeoutError if it has not arrived in time."""
        path = self.path(notification_id)
        give_up_at = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > give_up_at:
                raise TimeoutError(f"no email {notification_id} in {self.folder} after {timeout:.0f}s")
            time.sleep(0.1)
        return path

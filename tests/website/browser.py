"""Headless Chromium from Debian's package, driven by Playwright; nothing downloads a browser."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.parser import BytesParser
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
WEBSITE = Path(__file__).resolve().parents[2] / "website"
AXE = WEBSITE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "images"
# The machine's network is closed: without these, Chromium keeps calling Google's services.
_QUIET = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]
_SERIOUS = {"serious", "critical"}


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=_QUIET)
        try:
            yield browser
        finally:
            browser.close()


def serious_accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # evaluated by the driver, so the page's CSP stays untouched
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(node["target"][0] for node in violation["nodes"][:3])
        for violation in results["violations"]
        if violation["impact"] in _SERIOUS
    ]


def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Save the page to images/website-<name>.png, which the README shows."""
    page.screenshot(path=str(SCREENSHOTS / f"website-{name}.png"), full_page=full_page)


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window: 0 when it fits a phone."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def confirmation_code(outbox: Path, email: str, timeout: float = 30.0) -> str:
    """The six-digit code in the newest confirmation email sent to ``email``."""
    give_up_at = time.monotonic() + timeout
    while time.monotonic() < give_up_at:
        for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if message["To"] == email and "code" in str(message["Subject"]).lower():
                body = message.get_body(preferencelist=("plain",))
                found = re.search(r"\b(\d{6})\b", body.get_content() if body else "")
                if found:
                    return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no confirmation code for {email} in {outbox}")


def expire_session(page: Page) -> None:
    """Make the tab's session one whose tokens have expired and whose refresh token is revoked."""
    page.evaluate(
        """(expired) => {
            for (const key of Object.keys(sessionStorage)) {
                const token = key.endsWith('.idToken') || key.endsWith('.accessToken');
                if (token) sessionStorage.setItem(key, expired);
                if (key.endsWith('.refreshToken')) sessionStorage.setItem(key, 'revoked');
            }
        }""",
        _expired_jwt(),
    )


def _expired_jwt() -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return (
        f"{part({'alg': 'RS256', 'kid': 'x'})}.{part({'exp': now - 60, 'iat': now - 3660, 'sub': 'x'})}.c2ln"
    )

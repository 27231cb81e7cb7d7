"""The local website server: the built dashboard, its ``config.json``, and the headers it is served with.

On AWS, Amplify Hosting serves ``website/dist`` with the stage's ``config.json``
written next to it and the contract's security headers. Locally this small
ASGI app does the same, on a loopback port of its own:

- files of the build as they are: ``/assets/*`` (content-hashed names) cached for a
  year, everything else revalidated on each load;
- the single-page app's routes (a path with no file extension that is no file)
  answered with ``index.html``, and a missing asset with 404;
- ``GET /config.json`` built from the environment: the orchestrator's URL, the
  region, the user pool and app client, and the Cognito bridge's URL;
- on every answer, the Content-Security-Policy (its ``connect-src`` naming the
  orchestrator, the bridge and the emulator, which is S3 locally) and the other
  security headers of the contract.

It runs as a process of its own (``python -m cohort.local.website``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import urlsplit

import typer
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cohort.settings import Settings, get_settings

log = logging.getLogger(__name__)

INDEX = "index.html"
ASSETS_CACHE = "public, max-age=31536000, immutable"  # hashed names: a new build has new names
REVALIDATE = "no-cache"  # index.html and config.json name the current build and stage


@dataclass(frozen=True)
class SiteConfig:
    """What the dashboard reads from ``/config.json``, and the origins its pages may connect to."""

    api_url: str
    region: str
    user_pool_id: str
    user_pool_client_id: str
    cognito_endpoint: str  # the local Cognito bridge
    emulator_url: str  # S3's presigned URLs point at it locally

    @classmethod
    def from_settings(cls, settings: Settings) -> SiteConfig:
        return cls(
            api_url=settings.website_api_url,
            region=settings.aws_region,
            user_pool_id=settings.user_pool_id,
            # Locally the pool has one app client, which the SDK and the dashboard share.
            user_pool_client_id=settings.user_pool_client_ids[0] if settings.user_pool_client_ids else "",
            cognito_endpoint=settings.website_cognito_endpoint,
            emulator_url=settings.aws_endpoint_url or "",
        )

    def document(self) -> dict[str, str]:
        """The contract's shape: all strings, no secret; ``cognitoEndpoint`` only when there is one."""
        config = {
            "apiUrl": self.api_url,
            "region": self.region,
            "userPoolId": self.user_pool_id,
            "userPoolClientId": self.user_pool_client_id,
        }
        if self.cognito_endpoint:
            config["cognitoEndpoint"] = self.cognito_endpoint
        return config

    def security_headers(self) -> dict[str, str]:
        endpoints = (self.api_url, self.cognito_endpoint, self.emulator_url)
        connect = " ".join(["'self'", *(origin_of(url) for url in endpoints if url)])
        policy = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"font-src 'self'; connect-src {connect}; frame-ancestors 'none'; base-uri 'self'; "
            "form-action 'self'; object-src 'none'"
        )
        # No HSTS: the local site is plain HTTP on loopback (Amplify adds it on AWS).
        return {
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY",
        }


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL: what CORS and a CSP name."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SecurityHeaders:
    """ASGI middleware: every answer carries the headers, errors and 405s included."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self._app = app
        self._headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._headers]
            await send(message)

        await self._app(scope, receive, send_with_headers)


def site_is_built(site_dir: Path) -> bool:
    return (site_dir / INDEX).is_file()


def create_app(site_dir: Path | None = None, config: SiteConfig | None = None) -> Starlette:
    settings = get_settings()
    root = (site_dir or Path(settings.website_dir)).resolve()
    config = config or SiteConfig.from_settings(settings)

    async def config_json(_: Request) -> Response:
        return JSONResponse(config.document(), headers={"Cache-Control": REVALIDATE})

    async def site(request: Request) -> Response:
        path = request.path_params["path"]
        file = _file_in(root, path or INDEX)
        if file is not None:
            cache = ASSETS_CACHE if path.startswith("assets/") else REVALIDATE
            return FileResponse(file, headers={"Cache-Control": cache})
        if "." in PurePosixPath(path).name:
            return PlainTextResponse("not found", status_code=404, headers={"Cache-Control": REVALIDATE})
        # A route of the single-page app: the page routes it in the browser.
        return FileResponse(root / INDEX, headers={"Cache-Control": REVALIDATE})

    app = Starlette(
        routes=[
            Route("/config.json", config_json, methods=["GET", "HEAD"]),
            Route("/{path:path}", site, methods=["GET", "HEAD"]),
        ]
    )
    app.add_middleware(SecurityHeaders, headers=config.security_headers())
    return app


def _file_in(root: Path, path: str) -> Path | None:
    """The file at ``path`` under ``root``; None if there is none, or if the path leads out of it."""
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def main(port: Annotated[int, typer.Option(help="Loopback port to listen on")]) -> None:
    """Serve the dashboard until SIGTERM or SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    site_dir = Path(get_settings().website_dir)
    if not site_is_built(site_dir):
        raise typer.BadParameter(f"{site_dir} has no {INDEX}: build the dashboard with 'make website'")
    log.info("serving the dashboard in %s on port %d", site_dir, port)
    uvicorn.run(create_app(site_dir), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    typer.run(main)

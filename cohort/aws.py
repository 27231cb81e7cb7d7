"""Lazily created boto3 clients, one per service and process.

Nothing is resolved at import time, so tests and the emulator can set the
environment first.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader

from cohort.settings import get_settings

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, signature_version="s3v4")


@cache
def _service_models() -> Loader:
    """botocore's reader of the service models, shared by every session.

    The models never change, and parsing them again is most of what a new session's client costs;
    credentials, region and endpoint are still read afresh by each session.
    """
    return create_loader()


@cache
def client(service: str) -> Any:
    settings = get_settings()
    session = botocore.session.Session()
    session.register_component("data_loader", _service_models())
    return boto3.session.Session(botocore_session=session).client(
        service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=_CONFIG
    )


def reset_clients() -> None:
    """Forget cached clients and settings, after the environment has changed."""
    client.cache_clear()
    get_settings.cache_clear()

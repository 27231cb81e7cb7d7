"""Per-stage configuration, read from CDK context.

``cdk.json`` holds one block per stage under ``cohort:stages``; ``-c cohort:stage=prod``
picks one, and ``-c cohort:<field>=<value>`` overrides a single field of it.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_STAGE_KEY = "cohort:stage"
_STAGES_KEY = "cohort:stages"
_OVERRIDE_PREFIX = "cohort:"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_HOST = re.compile(r"[a-z0-9.-]+")  # urlsplit gives the host in lower case
# Plain HTTP only where the traffic never leaves the machine: a dashboard run locally against a stage.
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1"}


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str = Field(pattern=r"^[a-z][a-z0-9]{1,9}$")
    removal: Literal["destroy", "retain"]
    log_retention: logs.RetentionDays  # by name, e.g. TWO_WEEKS
    max_azs: int = Field(ge=2, le=3)
    nat_gateways: int = Field(ge=1, le=3)

    orchestrator_tasks: int = Field(ge=1, le=20)
    orchestrator_cpu: int
    orchestrator_memory_mib: int
    fl_node_cpu: int
    fl_node_memory_mib: int
    gpu_instance_type: str
    max_gpu_instances: int = Field(ge=1, le=50)
    max_evaluator_tasks: int = Field(ge=1, le=50)
    jupyter_cpu: int
    jupyter_memory_mib: int

    api_rate_limit: int = Field(ge=1)
    api_burst_limit: int = Field(ge=1)
    api_daily_quota: int = Field(ge=1)
    updates_expiry_days: int = Field(ge=1, le=365)
    # New device ids each app's API key may register per minute (the orchestrator's setting).
    device_registrations_per_minute: int = Field(ge=1, le=1_000_000)
    # Quotas per scientist, which the orchestrator enforces (cohort/services/quotas.py).
    max_active_jobs_per_scientist: int = Field(ge=1, le=1000)
    max_queued_evaluations_per_scientist: int = Field(ge=1, le=1000)

    sender_email: str = Field(pattern=_EMAIL)  # the SES identity notifications are sent from
    alarm_email: str | None = Field(None, pattern=_EMAIL)
    # Where the dashboard runs, scheme://host[:port]: the one origin CORS lets call the API and S3.
    website_url: str
    website_repository: str = ""  # https URL; empty: deploy the website by upload
    website_branch: str = "main"
    website_token_secret: str = ""  # Secrets Manager name of the repository access token

    @field_validator("website_url")
    @classmethod
    def _website_url_is_an_origin(cls, url: str) -> str:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - reading it validates it
        except ValueError as error:
            raise ValueError(f"website_url {url!r}: {error}") from None
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"website_url {url!r} must be https://host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError(
                f"website_url {url!r} must be an origin, scheme://host[:port]: no path, query, fragment or "
                "user; the dashboard is served from the root of its host"
            )
        if not _HOST.fullmatch(parts.hostname):  # as the orchestrator's COHORT_ALLOWED_ORIGINS wants it
            raise ValueError(f"website_url {url!r}: give a DNS name or an IPv4 address as its host")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError(f"website_url {url!r}: plain http is allowed for localhost only; use https")
        return url

    @property
    def website_origin(self) -> str:
        """``website_url`` as browsers send it in ``Origin``: lower case, without a default port or path."""
        parts = urlsplit(self.website_url)
        port = "" if parts.port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{parts.port}"
        return f"{parts.scheme}://{parts.hostname}{port}"

    @model_validator(mode="after")
    def _repository_needs_a_token(self) -> StageConfig:
        if self.website_repository and not self.website_token_secret:
            raise ValueError(
                "website_repository needs website_token_secret: the Secrets Manager name of its token"
            )
        return self

    @property
    def removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.DESTROY if self.removal == "destroy" else RemovalPolicy.RETAIN

    @classmethod
    def from_context(cls, scope: Construct) -> StageConfig:
        stage = scope.node.try_get_context(_STAGE_KEY) or "dev"
        stages = scope.node.try_get_context(_STAGES_KEY) or {}
        if stage not in stages:
            raise ValueError(f"no stage {stage!r} under {_STAGES_KEY} in cdk.json; known: {sorted(stages)}")
        values = {"stage": stage, **stages[stage]}
        for field in cls.model_fields:
            override = scope.node.try_get_context(f"{_OVERRIDE_PREFIX}{field}")
            if override is not None and field != "stage":
                values[field] = override
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ValueError(f"stage {stage!r} is misconfigured in cdk.json:\n{error}") from None

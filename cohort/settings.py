"""Configuration from the environment, the standard AWS way.

Region, credentials and ``AWS_ENDPOINT_URL`` are read by boto3 itself; Cohort's
own settings carry the ``COHORT_`` prefix. Nothing has a hard-coded account,
region or secret.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cohort.catalogue import Catalogue

# The dashboard as `make website` builds it, in the checkout this package runs from.
DEFAULT_WEBSITE_DIR = Path(__file__).resolve().parents[1] / "website" / "dist"
# An origin is a scheme and a host, with a port at most: no path, and no wildcard.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COHORT_", extra="ignore")

    stage: str = "dev"
    namespace: str = "local"
    aws_region: str = Field("us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    aws_endpoint_url: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL")

    # Cognito: ID tokens are verified against this pool's JWKS.
    user_pool_id: str = ""
    user_pool_client_ids: list[str] = Field(default_factory=list)

    # Device tokens are short-lived HS256 JWTs that the orchestrator issues and
    # the FL nodes verify; the key comes from Secrets Manager on AWS.
    token_secret: SecretStr = SecretStr("")
    device_token_ttl_seconds: int = Field(900, ge=60, le=86_400)
    # New device ids (first token exchanges) each API key may register per minute; the app's
    # installs per minute at their busiest should fit (docs/protocol.md).
    device_registrations_per_minute: int = Field(120, ge=1, le=1_000_000)

    # How FL nodes are started, and how devices reach them.
    launcher: Literal["local", "ecs"] = "local"
    node_public_base_url: str = ""  # on AWS: the API Gateway URL in front of the internal ALB
    ecs_subnets: list[str] = Field(default_factory=list)
    ecs_security_groups: list[str] = Field(default_factory=list)
    ecs_node_task_definition: str = ""
    ecs_listener_arn: str = ""
    ecs_vpc_id: str = ""
    log_dir: str = ".cohort/logs"  # local launcher: one log file per FL node

    # The orchestrator's node supervisor (cohort/services/supervisor.py). Each pass it checks every
    # job's node, giving each health check the timeout below; a node whose process or task ends is
    # relaunched at once, one that does not answer after the grace. A node that is not healthy within
    # the start timeout counts as a failed launch; after max_node_launches launches the job fails.
    # With these defaults a job is never `running` without a live node for more than 30 s
    # (2 x interval + 2 x health timeout + grace; docs/architecture.md derives it).
    supervise_interval_seconds: float = Field(5.0, gt=0, le=60)
    node_health_timeout_seconds: float = Field(2.0, gt=0, le=30)
    node_unreachable_grace_seconds: float = Field(10.0, ge=0, le=600)
    node_start_timeout_seconds: float = Field(90.0, gt=0, le=900)
    max_node_launches: int = Field(3, ge=1, le=20)
    max_concurrent_node_launches: int = Field(4, ge=1, le=32)  # launches run beside the passes

    # Notifications are sent from this SES identity; the email function may send from no other.
    sender_email: str = "notifications@cohort.local"

    # Limits on what users and devices may send.
    max_request_bytes: int = 1024 * 1024  # JSON bodies on the orchestrator and the FL nodes
    max_model_bytes: int = 256 * 1024 * 1024
    max_update_bytes: int = 256 * 1024 * 1024  # any device update; each job's model sets a lower limit
    max_evaluation_set_bytes: int = 64 * 1024 * 1024  # an uploaded evaluation set (safetensors)
    # ONNX import (cohort/onnx_import/sandbox.py): each conversion runs in a child with these limits.
    # It needs about 3x the file in memory (bench/onnx_import.py), so the largest file fits with room.
    max_onnx_bytes: int = 128 * 1024 * 1024
    onnx_import_memory_bytes: int = 1024 * 1024 * 1024
    onnx_import_cpu_seconds: int = Field(60, ge=1)
    onnx_import_wall_seconds: float = Field(120.0, gt=0)
    max_concurrent_imports: int = Field(1, ge=1, le=16)
    presigned_url_ttl_seconds: int = Field(900, ge=60, le=43_200)

    # Quotas per scientist (cohort/services/quotas.py): past them the API answers 429.
    max_active_jobs_per_scientist: int = Field(3, ge=1)  # training jobs that have not ended
    max_queued_evaluations_per_scientist: int = Field(5, ge=1)  # evaluations queued or running

    # Browser origins that may call the orchestrator (and, locally, the Cognito bridge): the
    # dashboard's. Exact origins only; none by default, so no browser reaches the API cross-origin.
    allowed_origins: list[str] = Field(default_factory=list)

    # The local website server (cohort/local/website.py): the built dashboard, and the API and
    # Cognito endpoints its config.json points the browser at.
    website_dir: str = str(DEFAULT_WEBSITE_DIR)
    website_api_url: str = ""
    website_cognito_endpoint: str = ""

    @field_validator("allowed_origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: give scheme://host[:port], without path or wildcard"
                )
        return origins

    @property
    def catalogue(self) -> Catalogue:
        return Catalogue(stage=self.stage, namespace=self.namespace)

    @property
    def cognito_issuer(self) -> str:
        return f"https://cognito-idp.{self.aws_region}.amazonaws.com/{self.user_pool_id}"

    @property
    def cognito_jwks_url(self) -> str:
        # The emulator serves the pool's keys under its own endpoint.
        if self.aws_endpoint_url:
            return f"{self.aws_endpoint_url.rstrip('/')}/{self.user_pool_id}/.well-known/jwks.json"
        return f"{self.cognito_issuer}/.well-known/jwks.json"


@cache
def get_settings() -> Settings:
    return Settings()

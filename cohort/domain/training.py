"""What a scientist asks of a federated training job, and what a device reports of itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class RoundPolicy:
    min_reports: int
    max_reports: int
    cohort_size: int
    deadline_seconds: float

    def __post_init__(self) -> None:
        if not 1 <= self.min_reports <= self.max_reports <= self.cohort_size:
            raise ValueError("need 1 <= min_reports <= max_reports <= cohort_size")
        if not self.deadline_seconds > 0:  # also refuses NaN
            raise ValueError("deadline_seconds must be positive")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClientConfig(_Strict):
    """How each device trains in a round."""

    batch_size: Annotated[int, Field(ge=1, le=4096)] = 32
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)] = 0.05
    local_epochs: Annotated[int, Field(ge=1, le=100)] = 1
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0


class ServerConfig(_Strict):
    """How the FL node runs rounds."""

    rounds: Annotated[int, Field(ge=1, le=10_000)] = 10
    min_reports: Annotated[int, Field(ge=1, le=100_000)] = 2
    max_reports: Annotated[int, Field(ge=1, le=100_000)] = 10
    cohort_size: Annotated[int, Field(ge=1, le=100_000)] | None = Field(
        None,
        description="Devices admitted per round; defaults to max_reports. Over-select to absorb dropouts.",
    )
    round_deadline_seconds: Annotated[float, Field(gt=0.0, le=86_400.0)] = 60.0
    max_round_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    min_battery: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    require_unmetered_network: bool = False
    # How far one report may move the model: docs/protocol.md, "Bounded updates", says how to choose.
    max_update_norm: Annotated[
        float,
        Field(
            gt=0.0,
            le=1e6,
            description="An update (the device's weight delta) whose L2 norm over all tensors exceeds "
            "this is refused with 422. Honest updates are far smaller; this only stops absurd ones.",
        ),
    ] = 1_000.0
    clip_norm: Annotated[
        float | None,
        Field(
            gt=0.0,
            le=1e6,
            description="If set, each update is scaled down to at most this L2 norm before it is "
            "averaged, bounding any one device's pull; at most max_update_norm. Null: no clipping.",
        ),
    ] = None
    max_samples_per_report: Annotated[
        int,
        Field(
            ge=1,
            le=10_000_000,
            description="The largest num_samples a report may claim; a report claiming more is "
            "refused with 422.",
        ),
    ] = 10_000
    max_report_share: Annotated[
        float,
        Field(
            gt=0.0,
            le=1.0,
            description="The largest share of a round's total weight one report may carry; larger "
            "weights are lowered to it. A round with fewer than 1/max_report_share reports weighs them "
            "all equally. 1 turns the cap off.",
        ),
    ] = 0.2
    retain_updates: bool = Field(
        False,
        description="Keep each device's update after its round is checkpointed, for audit; by default the "
        "node deletes a round's updates once its checkpoint is written",
    )

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> ServerConfig:
        if self.min_reports > self.max_reports:
            raise ValueError(f"min_reports ({self.min_reports}) exceeds max_reports ({self.max_reports})")
        if self.cohort_size is not None and self.cohort_size < self.max_reports:
            raise ValueError(f"cohort_size ({self.cohort_size}) is below max_reports ({self.max_reports})")
        if self.clip_norm is not None and self.clip_norm > self.max_update_norm:
            raise ValueError(
                f"clip_norm ({self.clip_norm:g}) exceeds max_update_norm ({self.max_update_norm:g}): "
                "updates are refused above max_update_norm before any is clipped"
            )
        return self

    @property
    def policy(self) -> RoundPolicy:
        return RoundPolicy(
            min_reports=self.min_reports,
            max_reports=self.max_reports,
            cohort_size=self.cohort_size or self.max_reports,
            deadline_seconds=self.round_deadline_seconds,
        )


class Availability(_Strict):
    # Exactly the JSON types the protocol names: `"charging": 0` is a mistake to report, not a False.
    model_config = ConfigDict(strict=True)

    battery: Annotated[float, Field(ge=0.0, le=1.0)]
    charging: bool
    network: Literal["wifi", "ethernet", "cellular", "none"]

    def ineligibility(self, config: ServerConfig) -> str | None:
        """Why this device may not train now, or None if it may."""
        if self.network == "none":
            return "the device is offline"
        if config.require_unmetered_network and self.network == "cellular":
            return "this job trains only on unmetered networks"
        if not self.charging and self.battery < config.min_battery:
            return f"battery below {config.min_battery:.0%} and not charging"
        return None

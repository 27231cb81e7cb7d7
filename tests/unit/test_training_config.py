"""Training job configuration and device eligibility."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from cohort.domain.training import Availability, ClientConfig, ServerConfig
from cohort.federated.rounds import RoundPolicy

# -- ServerConfig ----------------------------------------------------------------------


def test_defaults_give_a_consistent_round_policy() -> None:
    # Given the default server configuration
    config = ServerConfig()

    # When its round policy is derived
    policy = config.policy

    # Then the cohort defaults to max_reports and the bounds are ordered
    assert isinstance(policy, RoundPolicy)
    assert 1 <= policy.min_reports <= policy.max_reports <= policy.cohort_size
    assert policy.cohort_size == config.max_reports
    assert policy.deadline_seconds == config.round_deadline_seconds > 0


def test_the_policy_carries_the_configured_values_with_over_selection() -> None:
    config = ServerConfig(min_reports=3, max_reports=5, cohort_size=8, round_deadline_seconds=12.5)

    assert config.policy == RoundPolicy(min_reports=3, max_reports=5, cohort_size=8, deadline_seconds=12.5)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param(
            {"min_reports": 5, "max_reports": 3}, "min_reports (5) exceeds max_reports (3)", id="min>max"
        ),
        pytest.param(
            {"min_reports": 2, "max_reports": 10, "cohort_size": 9},
            "cohort_size (9) is below max_reports (10)",
            id="cohort<max",
        ),
        pytest.param({"min_reports": 0}, "min_reports", id="zero-quorum"),
        pytest.param({"rounds": 0}, "rounds", id="zero-rounds"),
        pytest.param({"round_deadline_seconds": 0}, "round_deadline_seconds", id="zero-deadline"),
        pytest.param({"round_deadline_seconds": math.nan}, "round_deadline_seconds", id="nan-deadline"),
        pytest.param({"round_deadline_seconds": math.inf}, "round_deadline_seconds", id="inf-deadline"),
        pytest.param({"min_battery": 1.5}, "min_battery", id="battery-over-one"),
        pytest.param({"max_round_attempts": 0}, "max_round_attempts", id="no-attempts"),
        pytest.param({"learning_rate": 0.1}, "learning_rate", id="client-field-on-server"),
        pytest.param(
            {"max_update_norm": 10, "clip_norm": 20},
            "clip_norm (20) exceeds max_update_norm (10)",
            id="clip>max",
        ),
        pytest.param({"max_update_norm": 0}, "max_update_norm", id="zero-norm-bound"),
        pytest.param({"max_update_norm": math.nan}, "max_update_norm", id="nan-norm-bound"),
        pytest.param({"clip_norm": -1}, "clip_norm", id="negative-clip"),
        pytest.param({"clip_norm": math.inf}, "clip_norm", id="inf-clip"),
        pytest.param({"max_samples_per_report": 0}, "max_samples_per_report", id="no-samples"),
        pytest.param(
            {"max_samples_per_report": 10_000_001}, "max_samples_per_report", id="samples-over-limit"
        ),
        pytest.param({"max_report_share": 0}, "max_report_share", id="zero-share"),
        pytest.param({"max_report_share": 1.5}, "max_report_share", id="share-over-one"),
        pytest.param({"shell": "rm -rf /"}, "shell", id="unknown-field"),
    ],
)
def test_an_invalid_server_config_is_refused_naming_the_problem(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ServerConfig.model_validate(fields)

    assert message in str(caught.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"min_reports": 4, "max_reports": 4},
        {"min_reports": 1, "max_reports": 4, "cohort_size": 4},
        {"min_reports": 1, "max_reports": 1},
    ],
)
def test_boundary_server_configs_are_accepted(fields: dict) -> None:
    config = ServerConfig.model_validate(fields)

    assert config.policy.min_reports <= config.policy.max_reports <= config.policy.cohort_size


def test_the_default_bounds_refuse_absurd_updates_and_cap_a_report_to_a_fifth_of_its_round() -> None:
    config = ServerConfig()

    assert (config.max_update_norm, config.clip_norm) == (1_000.0, None)
    assert (config.max_samples_per_report, config.max_report_share) == (10_000, 0.2)


def test_clip_norm_may_equal_the_norm_bound() -> None:
    config = ServerConfig(max_update_norm=10, clip_norm=10)

    assert config.clip_norm == config.max_update_norm


@pytest.mark.parametrize(
    "field", ["max_update_norm", "clip_norm", "max_samples_per_report", "max_report_share"]
)
def test_each_bound_is_described_in_the_published_schema(field: str) -> None:
    schema = ServerConfig.model_json_schema()["properties"][field]

    assert len(schema["description"]) > 40


def test_server_config_is_immutable() -> None:
    config = ServerConfig()

    with pytest.raises(ValidationError):
        config.max_reports = 1


# -- ClientConfig ----------------------------------------------------------------------


def test_client_defaults_are_usable_for_training() -> None:
    config = ClientConfig()

    assert config.batch_size >= 1
    assert config.learning_rate > 0
    assert config.local_epochs >= 1
    assert 0 <= config.momentum < 1


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"batch_size": 0}, id="zero-batch"),
        pytest.param({"learning_rate": 0.0}, id="zero-learning-rate"),
        pytest.param({"learning_rate": -0.1}, id="negative-learning-rate"),
        pytest.param({"local_epochs": 0}, id="zero-epochs"),
        pytest.param({"momentum": 1.0}, id="momentum-one"),
        pytest.param({"optimizer": "adam"}, id="unknown-field"),
        pytest.param({"min_reports": 2}, id="server-field-on-client"),
    ],
)
def test_an_invalid_client_config_is_refused_naming_the_field(fields: dict) -> None:
    with pytest.raises(ValidationError) as caught:
        ClientConfig.model_validate(fields)

    assert next(iter(fields)) in str(caught.value)


# -- Availability ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("battery", "charging", "network", "config", "reason"),
    [
        pytest.param(1.0, True, "none", {}, "offline", id="offline-even-when-charging"),
        pytest.param(0.9, False, "cellular", {"require_unmetered_network": True}, "unmetered", id="metered"),
        pytest.param(0.1, False, "wifi", {"min_battery": 0.2}, "battery below 20%", id="low-battery"),
        pytest.param(0.0, False, "ethernet", {"min_battery": 0.05}, "battery below 5%", id="empty-battery"),
    ],
)
def test_an_ineligible_device_is_told_why(
    battery: float, charging: bool, network: str, config: dict, reason: str
) -> None:
    availability = Availability(battery=battery, charging=charging, network=network)

    found = availability.ineligibility(ServerConfig(**config))

    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    ("battery", "charging", "network", "config"),
    [
        pytest.param(0.9, False, "wifi", {}, id="healthy-on-wifi"),
        pytest.param(0.05, True, "wifi", {"min_battery": 0.2}, id="low-but-charging"),
        pytest.param(0.2, False, "wifi", {"min_battery": 0.2}, id="exactly-the-minimum"),
        pytest.param(0.9, False, "cellular", {}, id="cellular-allowed-by-default"),
        pytest.param(0.9, False, "ethernet", {"require_unmetered_network": True}, id="ethernet-is-unmetered"),
        pytest.param(0.9, False, "wifi", {"require_unmetered_network": True}, id="wifi-is-unmetered"),
        pytest.param(0.0, False, "wifi", {"min_battery": 0.0}, id="no-battery-requirement"),
    ],
)
def test_an_eligible_device_may_train(battery: float, charging: bool, network: str, config: dict) -> None:
    availability = Availability(battery=battery, charging=charging, network=network)

    assert availability.ineligibility(ServerConfig(**config)) is None


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"battery": 1.5, "charging": False, "network": "wifi"}, id="battery-over-one"),
        pytest.param({"battery": -0.1, "charging": False, "network": "wifi"}, id="negative-battery"),
        pytest.param({"battery": 0.5, "charging": False, "network": "5g"}, id="unknown-network"),
        pytest.param({"battery": 0.5, "network": "wifi"}, id="missing-charging"),
        pytest.param({"battery": 0.5, "charging": False, "network": "wifi", "gps": "x"}, id="extra-field"),
    ],
)
def test_a_malformed_availability_report_is_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        Availability.model_validate(fields)

"""The API keeps its published contract, over real HTTP against the local platform.

- An id out of shape (empty, too long, with a '/') is refused with 422 before any lookup; an empty
  ``model_id`` once made ``POST /v1/jobs`` answer 500.
- A bounded schemathesis run over every operation of the orchestrator (with a scientist's, an app
  developer's and a device's tokens) and of a running FL node (with the device's token) finds no
  server error and no answer that docs/openapi does not describe: status, content type, body, headers.

The fuzzing runs under accounts of its own. Its scientist owns only models that were never
committed, so nothing it sends can start a training job or queue an evaluation; the job the node
runs belongs to another scientist, and completes when the run is over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import schemathesis
import torch
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.config import SchemathesisConfig

from cohort.catalogue import Group
from cohort.domain.architecture import parse_architecture
from cohort.domain.weights import encode, trainable_state
from cohort.local.platform import PlatformState
from cohort.sdk import CohortClient

from ..conftest import People
from .scenario import TINY_MLP, Device

PUBLISHED = Path(__file__).parents[2] / "docs" / "openapi"
# Bounded: about 2 minutes on 2 cores. Deterministic, so a run finds what the last one found.
FUZZING = SchemathesisConfig.from_dict(
    {
        "generation": {"mode": "all", "max-examples": 50, "deterministic": True},
        "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
        "suppress-health-check": ["too_slow", "data_too_large", "filter_too_much", "large_base_example"],
        "request-timeout": 30,
    }
)
ORCHESTRATOR = schemathesis.openapi.from_path(PUBLISHED / "orchestrator.json", config=FUZZING)
NODE = schemathesis.openapi.from_path(PUBLISHED / "fl-node.json", config=FUZZING)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,  # an authenticated operation called without a token answers 401, as documented
    unsupported_method,  # a method the path does not take answers 405 with Allow
]
# Datasets the fuzzer registers get a sample generated on the shared platform: keep each small.
MAX_FUZZED_ROWS = 200
# How long a started job may take to list its node for devices.
NODE_LISTED_WITHIN_SECONDS = 90.0


@dataclass
class Contract:
    """The fuzzing's accounts, the ids of what they own, and the node of a running job."""

    orchestrator_url: str
    scientist: dict[str, str]
    developer: dict[str, str]
    device: dict[str, str]
    node_url: str  # the node's root; the job's routes are under /jobs/{job_id}
    job_id: str
    ids: dict[str, str] = field(default_factory=dict)

    def headers_for(self, path: str, tags: list[str]) -> dict[str, str]:
        if path == "/v1/devices/token":
            return {}
        if path.startswith("/v1/devices/"):
            return self.device
        return self.developer if "datasets" in tags else self.scientist


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _node_of(device: Device, job_id: str) -> str:
    """The job's node URL, once the job lists it (starting a job may return before its node is up)."""
    deadline = time.monotonic() + NODE_LISTED_WITHIN_SECONDS
    while True:
        try:
            return device.node_url(job_id)
        except StopIteration:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def contract(platform: PlatformState) -> Iterator[Contract]:
    people = People(platform)
    # An app with a key, and a device of it
    developer_token = people.token(Group.APP_DEVELOPERS)
    developer = CohortClient(platform.orchestrator_url, developer_token)
    dataset_id = developer.register_dataset(
        "contract-app", [{"name": "x", "type": "float", "min": 0, "max": 1}], rows=50
    )["dataset_id"]
    api_key = developer.create_api_key(dataset_id)
    device = Device(platform, api_key["api_key"], "contract-device")
    # A job of another scientist's on that app: one round that one report completes
    owner = people.client(Group.SCIENTISTS)
    torch.manual_seed(0)
    weights = trainable_state(parse_architecture(TINY_MLP).build())
    model = owner.create_model("contract-mlp", TINY_MLP, weights)
    server_config = {"rounds": 1, "min_reports": 1, "max_reports": 1, "round_deadline_seconds": 600}
    client_config = {"batch_size": 16, "learning_rate": 0.05, "local_epochs": 1, "momentum": 0.0}
    job_id = owner.start_training(model["model_id"], dataset_id, client_config, server_config)["job_id"]
    job_url = _node_of(device, job_id)
    slot = device.cycle(job_url).json()
    assert slot["status"] == "accepted", slot
    # The fuzzing scientist, whose one model is never committed
    scientist = _bearer(people.token(Group.SCIENTISTS))
    draft = httpx.post(
        f"{platform.orchestrator_url}/v1/models",
        json={"name": "never-committed", "architecture": TINY_MLP},
        headers=scientist,
    )
    draft.raise_for_status()
    yield Contract(
        orchestrator_url=platform.orchestrator_url,
        scientist=scientist,
        developer=_bearer(developer_token),
        device=device.headers,
        node_url=job_url.removesuffix(f"/jobs/{job_id}"),
        job_id=job_id,
        ids={
            "model_id": draft.json()["model"]["model_id"],
            "dataset_id": dataset_id,
            "key_id": api_key["key_id"],
            "job_id": job_id,
        },
    )
    # The one report the round waits for: the job completes and its node exits
    zero = encode({name: torch.zeros_like(tensor) for name, tensor in weights.items()})
    device.report(job_url, slot["request_key"], zero).raise_for_status()
    developer.close()
    people.close()


@pytest.mark.slow
@ORCHESTRATOR.given(known_ids=st.booleans())
@ORCHESTRATOR.parametrize()
def test_the_orchestrator_keeps_its_contract(
    case: schemathesis.Case, known_ids: bool, contract: Contract
) -> None:
    # Given a generated request; a valid one names, half the time, things that exist (the fuzzing's own)
    if known_ids and case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE:
        _name_known_things(case, contract.ids)
    if case.path == "/v1/datasets" and case.method == "POST":
        _keep_the_sample_small(case)

    # When it is sent with the token of the role the operation is for,
    # Then the answer is no server error, and one the document describes
    case.call_and_validate(
        base_url=contract.orchestrator_url,
        headers=contract.headers_for(case.path, case.operation.tags or []),
        checks=CHECKS,
    )


@pytest.mark.slow
@NODE.parametrize()
def test_the_fl_node_keeps_its_contract(case: schemathesis.Case, contract: Contract) -> None:
    # Given a generated request to the running job's node, from a device of its app
    case.path_parameters = {**(case.path_parameters or {}), "job_id": contract.job_id}

    # When it is sent, Then the answer is no server error, and one the document describes
    case.call_and_validate(base_url=contract.node_url, headers=contract.device, checks=CHECKS)


def _name_known_things(case: schemathesis.Case, ids: dict[str, str]) -> None:
    if case.path_parameters:
        case.path_parameters = {name: ids.get(name, value) for name, value in case.path_parameters.items()}
    if isinstance(case.body, dict):
        case.body = {
            name: ids.get(name, value) if name.endswith("_id") else value for name, value in case.body.items()
        }


def _keep_the_sample_small(case: schemathesis.Case) -> None:
    rows = case.body.get("rows") if isinstance(case.body, dict) else None
    if isinstance(rows, int) and not isinstance(rows, bool) and rows > MAX_FUZZED_ROWS:
        case.body = {**case.body, "rows": MAX_FUZZED_ROWS}


# -- ids out of shape ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_id", ["", "m" * 129, "../models", "model id"], ids=["empty", "long", "path", "space"]
)
def test_an_id_out_of_shape_is_refused_with_422_and_starts_nothing(
    platform: PlatformState, people: People, model_id: str
) -> None:
    # Given a scientist, and an app to train on
    scientist = _bearer(people.token(Group.SCIENTISTS))
    dataset_id = people.client(Group.APP_DEVELOPERS).register_dataset(
        "ids-app", [{"name": "x", "type": "float", "min": 0, "max": 1}], rows=10
    )["dataset_id"]

    # When they ask to train a model whose id is out of shape
    response = httpx.post(
        f"{platform.orchestrator_url}/v1/jobs",
        json={"model_id": model_id, "dataset_id": dataset_id},
        headers=scientist,
    )

    # Then it is a 422 naming the field, and no job exists
    assert response.status_code == 422, response.text
    assert [problem["loc"] for problem in response.json()["errors"]] == [["body", "model_id"]]
    assert "model_id" in response.json()["detail"]
    assert httpx.get(f"{platform.orchestrator_url}/v1/jobs", headers=scientist).json() == []


def test_a_path_id_out_of_shape_is_refused_with_422(platform: PlatformState, people: People) -> None:
    scientist = _bearer(people.token(Group.SCIENTISTS))

    # A key past DynamoDB's 2,048 bytes would fail the lookup itself
    response = httpx.get(f"{platform.orchestrator_url}/v1/models/{'m' * 3000}", headers=scientist)

    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["path", "model_id"]

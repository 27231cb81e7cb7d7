"""Every refusal and failure of both services has one body, ``ErrorBody``, with the status its OpenAPI names.

The node's app runs in process over the in-memory store, and the orchestrator's with nothing behind it;
each error path is reached the way a client reaches it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from unittest import mock

import httpx
import jwt
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from fastapi.testclient import TestClient
from pynamodb.exceptions import PutError

from cohort import aws
from cohort.domain.errors import Unavailable
from cohort.federated.node_app import create_node_app
from cohort.web.http import ErrorBody

from .node_setting import DATASET_ID, JOB_ID, memory_store
from .test_node_http import AVAILABLE, MAX_UPDATE_BYTES, SETTINGS, Node, _token

JSON = {"Content-Type": "application/json"}
# A port nothing listens on: every connection to it is refused at once.
UNREACHABLE = "http://127.0.0.1:9"


def error_body(response: httpx.Response) -> ErrorBody:
    """The response's body, checked to be exactly an ErrorBody with a sentence for a person."""
    assert response.headers["content-type"] == "application/json", response.text
    assert set(response.json()) == {"detail", "errors"}, response.text
    body = ErrorBody.model_validate(response.json())
    assert body.detail.strip()
    return body


def _device(device_id: str, dataset_id: str = DATASET_ID) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(device_id, dataset_id)}"}


@pytest.fixture
def node() -> Iterator[Node]:
    store = memory_store(rounds=1, min_reports=1, max_reports=2, cohort_size=2, round_deadline_seconds=600)
    app = create_node_app(JOB_ID, store=store, settings=SETTINGS)
    # Bugs are answered too, not raised into the test: a client sees what the server sends.
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Node(client, store)


REFUSALS: dict[str, tuple[Callable[[Node], httpx.Response], int]] = {
    "no-token": (lambda n: n.cycle("phone-1", headers={}), 401),
    "another-app": (lambda n: n.cycle("phone-1", headers=_device("phone-1", "another-app")), 403),
    "unknown-request-key": (lambda n: n.report("phone-1", "made-up-key"), 404),
    "no-such-route": (lambda n: n.client.get(f"/jobs/{JOB_ID}/nothing-here"), 404),
    "another-job": (lambda n: n.client.post("/jobs/another-job/cycle", json=AVAILABLE), 404),
    "wrong-method": (lambda n: n.client.get(f"/jobs/{JOB_ID}/cycle"), 405),
    "invalid-cycle": (lambda n: n.cycle("phone-1", json={"availability": {"battery": 2}}), 422),
    "charging-not-a-boolean": (
        lambda n: n.cycle("phone-1", json={"availability": {**AVAILABLE["availability"], "charging": 0}}),
        422,
    ),
    "cycle-not-utf-8": (
        lambda n: n.cycle("phone-1", content=b"\xff\xfe{", headers={**_device("phone-1"), **JSON}, json=None),
        422,
    ),
    "request-key-out-of-shape": (lambda n: n.report("phone-1", "k" * 129), 422),
}


@pytest.mark.parametrize(("call", "status"), REFUSALS.values(), ids=REFUSALS.keys())
def test_every_refusal_of_the_node_has_the_one_error_body(
    node: Node, call: Callable[[Node], httpx.Response], status: int
) -> None:
    # When a device's request is refused, at whichever layer
    response = call(node)

    # Then the status is the expected one and the body the one error body
    assert response.status_code == status, response.text
    error_body(response)
    node.assert_unchanged({})


def test_an_update_over_the_limit_has_the_one_error_body(node: Node) -> None:
    # Given a device holding a slot: the node reads a body only for a key of the open round
    key = node.admit("phone-1")

    # When it sends an update larger than the limit
    response = node.report("phone-1", key, b"\0" * (MAX_UPDATE_BYTES + 1))

    # Then it is refused with 413 and the one error body, and nothing changed
    assert response.status_code == 413, response.text
    error_body(response)
    node.assert_unchanged({"phone-1": key})


def test_a_wrong_method_is_told_which_methods_the_route_takes(node: Node) -> None:
    response = node.client.get(f"/jobs/{JOB_ID}/cycle")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "it takes POST" in error_body(response).detail


def test_an_invalid_request_names_each_problem_in_errors_and_in_words(node: Node) -> None:
    # Given a device holding a slot
    key = node.admit("phone-1")

    # When it reports with two bad query parameters
    response = node.report("phone-1", key, params={"num_samples": 0, "loss": -1, "accuracy": 0.5})

    # Then each problem is in `errors`, where it is, and the detail says both in words
    assert response.status_code == 422
    body = error_body(response)
    assert {tuple(problem.loc) for problem in body.errors} == {("query", "num_samples"), ("query", "loss")}
    assert "query.num_samples: " in body.detail
    assert "query.loss: " in body.detail
    node.assert_unchanged({"phone-1": key})


def _store_error(exc: Exception) -> Callable[..., None]:
    def fail(*_: object, **__: object) -> None:
        raise exc

    return fail


def _wrapped_by_pynamodb(cause: Exception) -> Exception:
    try:
        raise PutError("Failed to put item", cause) from cause
    except PutError as exc:
        return exc


def _aws_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "no"}}, "PutItem")


@pytest.mark.parametrize(
    "failure",
    [
        _wrapped_by_pynamodb(EndpointConnectionError(endpoint_url=UNREACHABLE)),
        ReadTimeoutError(endpoint_url=UNREACHABLE),
        _wrapped_by_pynamodb(_aws_error("ProvisionedThroughputExceededException")),
        _aws_error("SlowDown"),
    ],
    ids=["unreachable", "timed-out", "throttled", "s3-slow-down"],
)
def test_a_dependency_that_is_down_answers_503_with_retry_after(node: Node, failure: Exception) -> None:
    # Given a node whose store cannot be reached, or refuses for now
    node.store.assign = _store_error(failure)  # type: ignore[method-assign]

    # When a device asks for a place
    response = node.cycle("phone-1")

    # Then it is told to come back, and when: a server error it is not
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(Unavailable.retry_after)
    assert "try again" in error_body(response).detail
    node.assert_unchanged({})


@pytest.mark.parametrize(
    "bug",
    [RuntimeError("internal state: secret-ish"), _wrapped_by_pynamodb(_aws_error("ValidationException"))],
    ids=["bug", "aws-refuses-the-request"],
)
def test_a_bug_answers_500_with_the_error_body_and_no_internals(node: Node, bug: Exception) -> None:
    # Given a node with a bug on the cycle path (a request AWS refuses is the platform's bug, not a 503)
    node.store.assign = _store_error(bug)  # type: ignore[method-assign]

    # When a device asks for a place
    response = node.cycle("phone-1")

    # Then it gets a 500 in the one body, saying nothing of the internals
    assert response.status_code == 500
    assert "secret" not in error_body(response).detail
    assert "retry-after" not in response.headers


def test_the_orchestrator_answers_503_while_the_identity_provider_cannot_be_reached() -> None:
    # Given an orchestrator whose user pool's keys cannot be fetched
    from cohort.services.orchestrator import create_app

    environment = {
        "COHORT_TOKEN_SECRET": secrets.token_urlsafe(48),
        "AWS_ENDPOINT_URL": UNREACHABLE,
        "COHORT_USER_POOL_ID": "us-east-1_pool",
    }
    with mock.patch.dict(os.environ, environment):
        aws.reset_clients()
        app = create_app(launcher=object())  # type: ignore[arg-type]
    # A well-formed token, which the orchestrator can only check against the pool's keys
    token = jwt.encode({"sub": "someone"}, "k" * 32, headers={"kid": "key-1"})

    # When a scientist lists their models
    response = TestClient(app).get("/v1/models", headers={"Authorization": f"Bearer {token}"})

    # Then they are told to try again, not that their token is wrong
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(Unavailable.retry_after)
    assert "identity provider" in error_body(response).detail

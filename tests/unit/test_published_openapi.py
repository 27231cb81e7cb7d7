"""The OpenAPI documents in docs/ are the ones the apps serve."""

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from cohort.openapi import documents, render
from cohort.web import http

PUBLISHED = Path(__file__).parents[2] / "docs" / "openapi"


@pytest.mark.parametrize(("name", "document"), sorted(documents().items()))
def test_published_document_matches_the_app(name: str, document: dict) -> None:
    published = (PUBLISHED / name).read_text()
    assert published == render(document), f"docs/openapi/{name} is stale: run '.venv/bin/cohort openapi'"


def test_every_device_route_documents_its_bearer_token() -> None:
    node = documents()["fl-node.json"]
    operations = [op for path in node["paths"].values() for op in path.values()]
    assert operations
    assert all(op.get("security") for op in operations)


def test_the_json_report_s_schema_is_published_with_the_api_s() -> None:
    # Given the orchestrator's document, and the model report.json is written from
    from cohort.evaluation.results import EvaluationResult

    schemas = documents()["orchestrator.json"]["components"]["schemas"]

    # Then it describes every field of the report, and each nested part by name
    assert set(schemas["EvaluationReport"]["properties"]) == set(EvaluationResult.model_fields)
    assert schemas["EvaluationReport"]["properties"]["curves"]["items"] == {
        "$ref": "#/components/schemas/CurvePoint"
    }
    assert {"CurvePoint", "WorstCasePoint", "ClassScore", "Flag", "Headline"} <= schemas.keys()


HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def _operations(document: dict) -> list[tuple[str, dict]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


@pytest.mark.parametrize("name", ["orchestrator.json", "fl-node.json"])
def test_each_published_document_is_valid_openapi(name: str) -> None:
    # A path parameter used but not declared ({job_id} in the node's paths, once) fails this.
    validate(json.loads((PUBLISHED / name).read_text()))


@pytest.mark.parametrize(("name", "document"), sorted(documents().items()))
def test_every_error_answer_is_documented_as_the_one_error_body(name: str, document: dict) -> None:
    schemas = document["components"]["schemas"]
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(schemas), "FastAPI's 422 body is not ours"
    assert set(schemas["ErrorBody"]["required"]) == {"detail", "errors"}
    for operation_name, operation in _operations(document):
        errors = {status: answer for status, answer in operation["responses"].items() if int(status) >= 400}
        assert errors, operation_name
        for status, answer in errors.items():
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (operation_name, status)
        assert errors["503"]["headers"]["Retry-After"]["required"], operation_name


@pytest.mark.parametrize(("name", "document"), sorted(documents().items()))
def test_each_operation_documents_the_errors_its_shape_implies(name: str, document: dict) -> None:
    for operation_name, operation in _operations(document):
        statuses = set(operation["responses"])
        parameters = operation.get("parameters", [])
        assert "503" in statuses, operation_name  # any dependency may be down
        if operation.get("security"):
            assert {"401", "403"} <= statuses, operation_name
        if any(parameter["in"] == "path" for parameter in parameters):
            assert "404" in statuses, operation_name
        if "requestBody" in operation:
            assert {"413", "422"} <= statuses, operation_name
        if parameters:
            assert "422" in statuses, operation_name


def test_the_use_cases_own_refusals_are_documented() -> None:
    orchestrator, node = documents()["orchestrator.json"], documents()["fl-node.json"]

    assert {"404", "409", "429"} <= set(orchestrator["paths"]["/v1/jobs"]["post"]["responses"])
    assert {"404", "409", "429"} <= set(orchestrator["paths"]["/v1/evaluations"]["post"]["responses"])
    assert "401" in orchestrator["paths"]["/v1/devices/token"]["post"]["responses"]
    assert "409" in node["paths"]["/jobs/{job_id}/reports/{request_key}"]["put"]["responses"]


def test_the_node_document_declares_the_job_id_its_paths_hold() -> None:
    node = documents()["fl-node.json"]
    for operation_name, operation in _operations(node):
        declared = {p["name"]: p for p in operation["parameters"] if p["in"] == "path"}
        assert declared["job_id"]["required"], operation_name
        assert declared["job_id"]["schema"]["pattern"], operation_name


def test_a_rule_status_for_an_operation_the_app_lacks_is_refused() -> None:
    # A renamed route must not leave its documented refusals behind unnoticed.
    app = FastAPI()

    @app.get("/things")
    def things() -> list[str]:
        return []

    http.configure(app, "test", max_body_bytes=1024, rule_statuses={"GET /thing": (409,)})

    with pytest.raises(ValueError, match="GET /thing"):
        app.openapi()

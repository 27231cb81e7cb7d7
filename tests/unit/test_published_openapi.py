"""The OpenAPI documents in docs/ are the ones the apps serve."""

from pathlib import Path

import pytest

from cohort.openapi import documents, render

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

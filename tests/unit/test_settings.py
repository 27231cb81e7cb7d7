"""Settings that guard the API: the browser origins let in."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cohort.settings import Settings


def test_no_origin_is_let_in_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COHORT_ALLOWED_ORIGINS", raising=False)

    assert Settings().allowed_origins == []


def test_origins_come_from_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "COHORT_ALLOWED_ORIGINS", '["https://main.d1abc.amplifyapp.com", "http://127.0.0.1:5173"]'
    )

    assert Settings().allowed_origins == ["https://main.d1abc.amplifyapp.com", "http://127.0.0.1:5173"]


@pytest.mark.parametrize(
    "origin",
    ["*", "https://*.amplifyapp.com", "https://example.org/", "https://example.org/app", "example.org"],
)
def test_only_exact_origins_are_accepted(monkeypatch: pytest.MonkeyPatch, origin: str) -> None:
    monkeypatch.setenv("COHORT_ALLOWED_ORIGINS", f'["{origin}"]')

    with pytest.raises(ValidationError, match="not an origin"):
        Settings()

"""Shared fixtures: one local platform (emulator + orchestrator) per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cohort import aws
from cohort.catalogue import Group
from cohort.local.accounts import create_confirmed_user
from cohort.local.platform import LocalPlatform, PlatformState
from cohort.sdk import CohortClient, sign_in

from .built_site import write_built_site


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the session's local platform, however it reaches the fixture.

    `make check` deselects them by this mark, so a new platform test cannot slip into the fast loop.
    """
    for item in items:
        if "platform" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.platform)


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """Tests that change the environment must not leave cached clients behind."""
    yield
    aws.reset_clients()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformState]:
    home: Path = tmp_path_factory.mktemp("cohort-home")
    # A built dashboard, so the platform runs all of it: the website server and the Cognito bridge too.
    site = write_built_site(tmp_path_factory.mktemp("website-dist"))
    with LocalPlatform(home, website_dir=site) as state:
        yield state


class People:
    """Creates signed-up, confirmed users and signed-in API clients for them."""

    def __init__(self, state: PlatformState) -> None:
        self._state = state
        self._clients: list[CohortClient] = []

    def token(self, group: Group) -> str:
        email = f"{group.value}-{uuid.uuid4().hex[:8]}@example.org"
        password = f"{uuid.uuid4().hex}aA1!"
        create_confirmed_user(
            self._state.user_pool_id, self._state.user_pool_client_id, email, password, group
        )
        return sign_in(self._state.user_pool_client_id, email, password)

    def client(self, group: Group) -> CohortClient:
        client = CohortClient(self._state.orchestrator_url, self.token(group))
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def people(platform: PlatformState) -> Iterator[People]:
    registry = People(platform)
    yield registry
    registry.close()

"""Fixtures of the integration tests.

- ``setting``: an app with an API key, and a scientist with a model, on the session's local platform;
- ``account``: every catalogue resource on moto inside this process, for the Lambda function tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from cohort import aws
from cohort.catalogue import Group, Table
from cohort.domain.architecture import parse_architecture
from cohort.domain.records import bind_tables
from cohort.domain.weights import trainable_state
from cohort.local.provision import UserPool, provision
from cohort.settings import get_settings

from .functions import queued_notifications
from .in_process_aws import clear_aws_environment
from .scenario import TINY_MLP, Setting


@pytest.fixture
def setting(people) -> Setting:
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset("tests-app", [{"name": "x", "type": "float", "min": 0, "max": 1}])
    api_key = developer.create_api_key(dataset["dataset_id"])["api_key"]
    scientist = people.client(Group.SCIENTISTS)
    torch.manual_seed(0)
    weights = trainable_state(parse_architecture(TINY_MLP).build())
    model = scientist.create_model("tiny-mlp", TINY_MLP, weights)
    return Setting(scientist, dataset["dataset_id"], api_key, model["model_id"], weights, developer)


@pytest.fixture(scope="module")
def _moto_account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserPool]:
    # Provisioned once per module: creating every client and table takes seconds.
    with pytest.MonkeyPatch.context() as monkeypatch:
        clear_aws_environment(monkeypatch)
        monkeypatch.setenv("COHORT_LOG_DIR", str(tmp_path_factory.mktemp("logs")))
        with mock_aws():
            yield provision(get_settings())
    # Give the session's local platform, if one runs, its environment and tables back.
    aws.reset_clients()
    bind_tables(get_settings())


@pytest.fixture
def account(_moto_account: UserPool) -> UserPool:
    """The resources the local platform provisions, on moto in this process; returns the user pool.

    Each test starts with no queued notifications, no idempotency records and no sent emails.
    """
    settings = get_settings()
    queued_notifications()
    dynamodb, table = aws.client("dynamodb"), settings.catalogue.table(Table.IDEMPOTENCY)
    for item in dynamodb.scan(TableName=table, ProjectionExpression="id")["Items"]:
        dynamodb.delete_item(TableName=table, Key=item)
    ses_backends[DEFAULT_ACCOUNT_ID][settings.aws_region].sent_messages.clear()
    return _moto_account

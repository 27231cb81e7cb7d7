"""Datasets on the local platform: registration, the sample generated through the stream, its download."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pyarrow.parquet as pq
import pytest

from cohort import aws
from cohort.catalogue import Group
from cohort.domain.records import DatasetRecord
from cohort.local.accounts import run_post_confirmation
from cohort.local.platform import PlatformState
from cohort.sdk import CohortError, sign_in
from cohort.services.signup import ROLE_ATTRIBUTE, InvalidRole

HEART_STUDY = [
    {"name": "age", "type": "int", "min": 18, "max": 90},
    {
        "name": "bmi",
        "type": "float",
        "min": 15,
        "max": 40,
        "decimals": 1,
        "distribution": {"kind": "normal", "mean": 25, "std": 4},
    },
    {"name": "smoker", "type": "bool", "null_ratio": 0.1},
    {"name": "country", "type": "category", "choices": ["FR", "DE", "US"]},
]


def test_a_registered_dataset_gets_a_sample_the_scientist_downloads(people) -> None:
    # Given an app developer who registers a dataset of 3,000 rows
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset("heart-study", HEART_STUDY, rows=3_000, seed=99)
    assert (dataset["status"], dataset["rows"], dataset["seed"]) == ("registered", 3_000, 99)

    # When a scientist waits for its sample (the stream pump hands the new dataset to the function)
    scientist = people.client(Group.SCIENTISTS)
    ready = scientist.wait_for_sample(dataset["dataset_id"], timeout=60)

    # Then the sample is ready, and the CSV behind the presigned URL holds the rows asked for
    assert (ready["status"], ready["status_reason"]) == ("ready", None)
    rows = list(csv.DictReader(io.StringIO(scientist.download_sample(dataset["dataset_id"]).decode())))
    assert len(rows) == 3_000
    assert list(rows[0]) == ["age", "bmi", "smoker", "country"]
    assert all(18 <= int(row["age"]) <= 90 for row in rows)
    assert {row["country"] for row in rows} == {"FR", "DE", "US"}
    assert {row["smoker"] for row in rows} == {"true", "false", ""}
    # and the Parquet file holds the same rows
    table = pq.read_table(io.BytesIO(scientist.download_sample(dataset["dataset_id"], "parquet")))
    assert table["age"].to_pylist() == [int(row["age"]) for row in rows]
    # and the developer who registered it gets the same sample
    assert developer.download_sample(dataset["dataset_id"]) == scientist.download_sample(
        dataset["dataset_id"]
    )


def test_the_presigned_link_names_the_file(people, platform: PlatformState) -> None:
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset(
        "sleep-tracker", [{"name": "hours", "type": "float", "min": 0, "max": 12}]
    )
    developer.wait_for_sample(dataset["dataset_id"], timeout=60)

    link = httpx.get(
        f"{platform.orchestrator_url}/v1/datasets/{dataset['dataset_id']}/sample",
        params={"format": "parquet"},
        headers={"Authorization": f"Bearer {people.token(Group.SCIENTISTS)}"},
    ).json()
    response = httpx.get(link["url"])

    assert response.status_code == 200
    assert (
        f'filename="sleep-tracker-{dataset["dataset_id"][:8]}.parquet"'
        in response.headers["content-disposition"]
    )
    assert link["expires_in"] > 0


def test_a_bad_schema_is_refused_with_every_problem_and_nothing_is_registered(people) -> None:
    developer = people.client(Group.APP_DEVELOPERS)
    before = len(developer.datasets())

    with pytest.raises(CohortError) as refused:
        developer.register_dataset(
            "bad-app",
            [
                {"name": "bmi", "type": "float", "min": 40, "max": 10},
                {"name": "mood", "type": "category", "choices": []},
                {"name": "steps", "type": "integer", "min": 0, "max": 10},
            ],
            rows=0,
        )

    assert refused.value.status == 422
    problems = {(tuple(p["loc"]), p["msg"]) for p in refused.value.errors}
    assert problems == {
        (("body", "attributes", 0), "attribute 'bmi': min 40 > max 10"),
        (("body", "attributes", 1), "attribute 'mood': a category needs at least one choice"),
        (
            ("body", "attributes", 2, "type"),
            "Input should be 'int', 'float', 'bool', 'category' or 'string'",
        ),
        (("body", "rows"), "a sample needs at least 1 row, not 0"),
    }
    assert len(developer.datasets()) == before


def test_a_dataset_stored_without_checks_fails_and_its_sample_says_why(people) -> None:
    # Given a dataset written straight to the table with a bad schema, as before validation existed
    developer = people.client(Group.APP_DEVELOPERS)
    registered = developer.register_dataset("good-app", HEART_STUDY)["dataset_id"]
    owner_id = DatasetRecord.get(registered).owner_id  # the developer's user id
    dataset_id = uuid.uuid4().hex
    DatasetRecord(
        dataset_id,
        owner_id=owner_id,
        app_name="legacy-app",
        attributes=[{"name": "bmi", "type": "float", "min": 40, "max": 10}],
    ).save()

    # When the dataset function has seen it
    failed = developer.wait_for_sample(dataset_id, timeout=60)

    # Then the dataset failed with the reason, and the sample route answers 409 with it
    assert (failed["status"], failed["status_reason"]) == ("failed", "attribute 'bmi': min 40 > max 10")
    with pytest.raises(CohortError) as conflict:
        developer.download_sample(dataset_id)
    assert conflict.value.status == 409
    assert "could not be generated: attribute 'bmi': min 40 > max 10" in conflict.value.detail


def test_only_scientists_and_the_owner_get_a_sample(people) -> None:
    owner = people.client(Group.APP_DEVELOPERS)
    dataset = owner.register_dataset("private-app", HEART_STUDY)
    other_developer = people.client(Group.APP_DEVELOPERS)

    with pytest.raises(CohortError) as refused:
        other_developer.download_sample(dataset["dataset_id"])
    assert refused.value.status == 403
    with pytest.raises(CohortError) as missing:
        other_developer.dataset(uuid.uuid4().hex)
    assert missing.value.status == 404


def test_the_app_developer_sees_the_jobs_on_their_app_s_devices(setting) -> None:
    # Given two training jobs on the developer's dataset, one after the other
    quick = {"min_reports": 1, "max_reports": 1, "round_deadline_seconds": 1, "max_round_attempts": 1}
    older = setting.start(rounds=2, **quick)
    newer = setting.start(rounds=3, **quick)

    # When the developer who registered the dataset lists its jobs
    listed = setting.developer.dataset_jobs(setting.dataset_id)

    # Then both are there, newest first, with their progress
    assert [job["job_id"] for job in listed] == [newer["job_id"], older["job_id"]]
    assert [job["total_rounds"] for job in listed] == [3, 2]
    assert all(job["current_round"] == 1 for job in listed)
    assert all(job["status"] in {"pending", "running", "failed"} for job in listed)
    # and nothing of the scientist's model or configuration
    assert all(
        set(job)
        == {"job_id", "status", "status_reason", "current_round", "total_rounds", "created_at", "updated_at"}
        for job in listed
    )


def test_a_dataset_without_jobs_lists_none(people) -> None:
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset("quiet-app", [{"name": "x", "type": "bool"}])

    assert developer.dataset_jobs(dataset["dataset_id"]) == []


def test_an_app_developer_lists_the_apps_they_registered_and_no_one_else_s(people) -> None:
    # Given two app developers, each with an app
    ada, grace = people.client(Group.APP_DEVELOPERS), people.client(Group.APP_DEVELOPERS)
    mine = ada.register_dataset("ada-app", HEART_STUDY[:1])
    theirs = grace.register_dataset("grace-app", HEART_STUDY[:1])

    # When the first lists their own
    listed = [dataset["dataset_id"] for dataset in ada.datasets(mine=True)]

    # Then only their app is there, while browsing still shows every dataset
    assert listed == [mine["dataset_id"]]
    browsed = {dataset["dataset_id"] for dataset in ada.datasets()}
    assert {mine["dataset_id"], theirs["dataset_id"]} <= browsed


def test_a_scientist_has_no_apps_of_their_own(people) -> None:
    scientist = people.client(Group.SCIENTISTS)
    with pytest.raises(CohortError) as refused:
        scientist.datasets(mine=True)
    assert refused.value.status == 403


def _account_without_a_role(platform: PlatformState) -> str:
    """An ID token of a confirmed account whose sign-up the signup function refused: it is in no group."""
    email, password = f"no-role-{uuid.uuid4().hex[:8]}@example.org", f"{uuid.uuid4().hex}aA1!"
    cognito = aws.client("cognito-idp")
    cognito.sign_up(
        ClientId=platform.user_pool_client_id,
        Username=email,
        Password=password,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": ROLE_ATTRIBUTE, "Value": "wizard"}],
    )
    cognito.admin_confirm_sign_up(UserPoolId=platform.user_pool_id, Username=email)
    with pytest.raises(InvalidRole):
        run_post_confirmation(platform.user_pool_id, platform.user_pool_client_id, email)
    return sign_in(platform.user_pool_client_id, email, password)


def test_an_account_without_a_role_sees_no_dataset(platform: PlatformState, people) -> None:
    # Given a registered dataset, and an account whose sign-up did not give it a role
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset("guarded-app", HEART_STUDY, seed=7)
    headers = {"Authorization": f"Bearer {_account_without_a_role(platform)}"}

    # When it browses the datasets, reads the dataset or asks for its sample
    answers = [
        httpx.get(f"{platform.orchestrator_url}/v1/datasets", headers=headers),
        httpx.get(f"{platform.orchestrator_url}/v1/datasets/{dataset['dataset_id']}", headers=headers),
        httpx.get(f"{platform.orchestrator_url}/v1/datasets/{dataset['dataset_id']}/sample", headers=headers),
    ]

    # Then each is refused with nothing but the reason, and browsing says what to do about it
    assert [answer.status_code for answer in answers] == [403, 403, 403]
    assert all(answer.json() == {"detail": answer.json()["detail"], "errors": []} for answer in answers)
    assert "ask an administrator" in answers[0].json()["detail"]


def test_browsing_never_shows_the_seed_while_the_owner_still_reads_it(people) -> None:
    # Given a dataset registered with a known seed
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset("seeded-app", HEART_STUDY, rows=500, seed=4_242)
    scientist, other_developer = people.client(Group.SCIENTISTS), people.client(Group.APP_DEVELOPERS)

    # When scientists and app developers browse the datasets, and a scientist reads it
    browsed = [
        next(d for d in client.datasets() if d["dataset_id"] == dataset["dataset_id"])
        for client in (scientist, other_developer, developer)
    ]
    read_by_scientist = scientist.dataset(dataset["dataset_id"])

    # Then they see what they need to choose it, and no seed anywhere
    for listed in [*browsed, *developer.datasets(mine=True)]:
        assert set(listed) == {
            "dataset_id",
            "app_name",
            "status",
            "status_reason",
            "attributes",
            "rows",
            "created_at",
        }
        assert (listed["app_name"], listed["rows"]) == ("seeded-app", 500)
        assert [a["name"] for a in listed["attributes"]] == [a["name"] for a in HEART_STUDY]
    assert read_by_scientist["seed"] is None
    # And the developer who registered it still reads its seed
    assert developer.dataset(dataset["dataset_id"])["seed"] == 4_242

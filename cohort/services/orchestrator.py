"""The orchestrator's REST API: scientists, app developers and devices.

Handlers only authenticate and delegate; the use cases live in the service
modules beside this one.
"""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from cohort import storage
from cohort.catalogue import Group
from cohort.datasets.schema import SampleFormat
from cohort.domain.architecture import ArchitectureSpec
from cohort.domain.identifiers import Identifier
from cohort.domain.records import bind_tables
from cohort.evaluation.results import EvaluationResult
from cohort.services import datasets, devices, evaluations, jobs, models
from cohort.services.ecs_launcher import EcsLauncher
from cohort.services.launcher import Launcher, LocalProcessLauncher
from cohort.services.supervisor import Supervisor
from cohort.settings import Settings, get_settings
from cohort.web import http
from cohort.web.auth import CognitoVerifier, DeviceIdentity, DeviceTokens, Principal

log = logging.getLogger(__name__)


ModelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ModelName
    architecture: ArchitectureSpec


class ModelImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ModelName
    format: Literal["onnx"]


def create_app(launcher: Launcher | None = None) -> FastAPI:
    settings = get_settings()
    launcher = launcher or launcher_for(settings, Path(settings.log_dir))
    supervisor = Supervisor(launcher, settings)
    app = FastAPI(
        title="Cohort orchestrator",
        description="Federated learning and robustness evaluation on your own AWS account.",
        version="0.1.0",
        lifespan=_lifespan(launcher, supervisor),
    )
    app.include_router(_people_routes(CognitoVerifier(settings), supervisor))
    app.include_router(_device_routes(DeviceTokens(settings), settings.device_registrations_per_minute))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return Response("ok")

    http.configure(
        app, "orchestrator", max_body_bytes=settings.max_request_bytes, rule_statuses=_RULE_STATUSES
    )
    _document_report_schema(app)
    # The dashboard calls the API from its own origin (Amplify's domain; another loopback port locally).
    http.allow_cross_origin(
        app,
        settings.allowed_origins,
        methods=["GET", "POST", "DELETE"],
        headers=["Authorization", "Content-Type"],
        expose_headers=["Retry-After"],  # the dashboard says when to try a 429 or a 503 again
    )
    return app


# The error statuses that come from the use cases' rules, beyond those each route's shape implies
# (see http.document_errors): a record in the wrong state (409), an id in the body that names
# nothing of the caller's (404), a quota (429), an API key that is unknown or revoked (401).
_RULE_STATUSES = {
    "POST /v1/models/{model_id}/commit": (409,),
    "GET /v1/datasets/{dataset_id}/sample": (409,),
    "POST /v1/jobs": (404, 409, 429),
    "GET /v1/jobs/{job_id}/model": (409,),
    "POST /v1/evaluations": (404, 409, 429),
    "GET /v1/evaluations/{evaluation_id}/report": (409,),
    "POST /v1/devices/token": (401, 409, 429),
}


def _document_report_schema(app: FastAPI) -> None:
    """Publish the JSON report's schema with the API's, though S3 serves the report itself.

    Clients typed from this document (the website's) then read reports through the same types.
    """
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = build()
            report = EvaluationResult.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document["components"]["schemas"]
            parts = {**report.pop("$defs", {}), "EvaluationReport": report}
            clashes = parts.keys() & schemas.keys()
            if clashes:
                raise RuntimeError(f"the report's schemas clash with the API's: {sorted(clashes)}")
            schemas.update(parts)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def launcher_for(settings: Settings, log_dir: Path) -> Launcher:
    if settings.launcher == "ecs":
        return EcsLauncher(settings)
    return LocalProcessLauncher(
        log_dir,
        startup_timeout=settings.node_start_timeout_seconds,
        health_timeout=settings.node_health_timeout_seconds,
    )


def _lifespan(
    launcher: Launcher, supervisor: Supervisor
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        bind_tables(get_settings())
        supervisor.start()
        yield
        supervisor.stop()
        if isinstance(launcher, LocalProcessLauncher):
            launcher.stop_all()

    return lifespan


def _people_routes(verifier: CognitoVerifier, supervisor: Supervisor) -> APIRouter:
    person = http.bearer_dependency(verifier.verify)

    def scientist(caller: Annotated[Principal, Depends(person)]) -> Principal:
        caller.require(Group.SCIENTISTS)
        return caller

    Person = Annotated[Principal, Depends(person)]
    Scientist = Annotated[Principal, Depends(scientist)]
    people = APIRouter(prefix="/v1")

    @people.post("/models", status_code=201, tags=["models"])
    def create_model(body: ModelRequest, caller: Scientist) -> models.ModelCreated:
        """Register a model; then PUT its safetensors weights to `upload_url` and commit."""
        return models.create(caller, body.name, body.architecture)

    @people.post("/models/imports", status_code=201, tags=["models"])
    def import_model(body: ModelImportRequest, caller: Scientist) -> models.ModelCreated:
        """Register a model to import from ONNX; then PUT the .onnx file to `upload_url` and commit."""
        return models.create_import(caller, body.name)

    @people.post("/models/{model_id}/commit", tags=["models"])
    def commit_model(model_id: Identifier, caller: Scientist) -> models.ModelView:
        """Validate the upload and mark the model ready.

        Weights are checked against the architecture. An ONNX file is first converted, in a
        process limited in memory and time, into an architecture and weights, which are then
        checked the same way; 422 says what in the file cannot be imported, 503 that other
        imports hold the capacity for now.
        """
        return models.commit_upload(caller, model_id)

    @people.get("/models", tags=["models"])
    def list_models(caller: Scientist) -> list[models.ModelView]:
        return models.list_owned(caller)

    @people.get("/models/{model_id}", tags=["models"])
    def get_model(model_id: Identifier, caller: Scientist) -> models.ModelView:
        return models.ModelView.of(models.owned(caller, model_id))

    @people.get("/datasets", tags=["datasets"])
    def browse_datasets(
        caller: Person,
        mine: Annotated[bool, Query(description="Only the datasets you registered (app developers)")] = False,
    ) -> list[datasets.DatasetSummary]:
        """Every dataset scientists may train on, newest first; with mine=true, your own apps'.

        Each dataset's app, schema, sample size and state, never its seed (the app developer who
        registered a dataset reads it with the dataset itself); an account with no role (its sign-up
        did not complete) gets 403.
        """
        return datasets.registered_by(caller) if mine else datasets.browse(caller)

    @people.post("/datasets", status_code=201, tags=["datasets"])
    def register_dataset(body: datasets.DatasetRegistration, caller: Person) -> datasets.DatasetView:
        """Register an app's on-device data (app developers); its sample dataset is generated next.

        A schema that cannot be generated is refused here with 422, one problem per entry.
        """
        return datasets.register(caller, body)

    @people.get("/datasets/{dataset_id}", tags=["datasets"])
    def get_dataset(dataset_id: Identifier, caller: Person) -> datasets.DatasetView:
        """A dataset and the state of its sample (scientists, and the app developer who registered it).

        Its seed only for the app developer who registered it.
        """
        return datasets.DatasetView.for_caller(datasets.readable(caller, dataset_id), caller)

    @people.get("/datasets/{dataset_id}/sample", tags=["datasets"])
    def download_sample(
        dataset_id: Identifier,
        caller: Person,
        fmt: Annotated[SampleFormat, Query(alias="format", description="csv or parquet")] = "csv",
    ) -> storage.Download:
        """A presigned URL for the sample dataset; 409 while it is generated, or if it failed."""
        return datasets.sample(caller, dataset_id, fmt)

    @people.post("/datasets/{dataset_id}/api-keys", status_code=201, tags=["datasets"])
    def create_api_key(dataset_id: Identifier, caller: Person) -> datasets.ApiKeyCreated:
        """Create an API key for the app; it is shown once and stored only as a hash."""
        return datasets.create_api_key(caller, dataset_id)

    @people.get("/datasets/{dataset_id}/api-keys", tags=["datasets"])
    def list_api_keys(dataset_id: Identifier, caller: Person) -> list[datasets.ApiKeyView]:
        """The dataset's keys, without their secrets."""
        return datasets.list_api_keys(caller, dataset_id)

    @people.delete("/datasets/{dataset_id}/api-keys/{key_id}", tags=["datasets"])
    def revoke_api_key(dataset_id: Identifier, key_id: Identifier, caller: Person) -> datasets.ApiKeyView:
        """Revoke a key: its devices get no new tokens."""
        return datasets.revoke_api_key(caller, dataset_id, key_id)

    @people.delete("/datasets/{dataset_id}/devices/{device_id}", tags=["datasets"])
    def forget_device(
        dataset_id: Identifier, device_id: Identifier, caller: Person
    ) -> devices.DeviceRegistrationView:
        """Delete a device's registered key (app developers): the id's next token exchange registers anew.

        For a device that lost its key; tokens issued before live out their short TTL.
        """
        return devices.forget(caller, dataset_id, device_id)

    @people.get("/datasets/{dataset_id}/jobs", tags=["datasets"])
    def dataset_jobs(dataset_id: Identifier, caller: Person) -> list[jobs.DatasetJobView]:
        """The training jobs on the app's devices, newest first (the app developer who registered it).

        Each job's progress only: the scientist's model and configuration are not shown.
        """
        return jobs.for_dataset(caller, dataset_id)

    @people.post("/jobs", status_code=202, tags=["training"])
    def start_training(body: jobs.TrainingRequest, caller: Scientist) -> jobs.JobView:
        """Start federated training of one of your models on a dataset.

        Answers at once with the job, `starting`: its FL node is launched in the background, and
        the job is `running` once the node has started. A node that cannot be started is retried;
        after `COHORT_MAX_NODE_LAUNCHES` launches the job is `failed`, and `status_reason` says why.
        Poll `GET /v1/jobs/{job_id}` (its `node` shows the node's health).

        409 if the model is not committed, or its weights in storage are not those sealed at commit;
        429 past your quota of training jobs that have not ended (the message says how to raise it).
        """
        job = jobs.start(caller, body)
        supervisor.wake()
        return job

    @people.get("/jobs", tags=["training"])
    def list_jobs(caller: Scientist) -> list[jobs.JobView]:
        return jobs.list_owned(caller)

    @people.get("/jobs/{job_id}", tags=["training"])
    def job_status(job_id: Identifier, caller: Scientist) -> jobs.JobView:
        """Status, with each round's reports, samples, loss and accuracy."""
        return jobs.status(caller, job_id)

    @people.get("/jobs/{job_id}/model", tags=["training"])
    def download_trained_model(job_id: Identifier, caller: Scientist) -> storage.Download:
        """A presigned URL for the trained weights, once the job has completed."""
        return jobs.download_trained(caller, job_id)

    @people.post("/evaluations", status_code=201, tags=["evaluations"])
    def submit_evaluation(
        body: evaluations.EvaluationRequest, caller: Scientist
    ) -> evaluations.EvaluationView:
        """Queue an adversarial-robustness evaluation of one of your models (or of a job's trained model).

        422 names each problem with the spec, including a request over the work budget; 429 past your
        quota of evaluations queued or running (the message says how to raise it).
        """
        return evaluations.submit(caller, body)

    @people.get("/evaluations", tags=["evaluations"])
    def list_evaluations(caller: Scientist) -> list[evaluations.EvaluationView]:
        return evaluations.list_owned(caller)

    @people.post("/evaluations/uploads", status_code=201, tags=["evaluations"])
    def upload_evaluation_set(
        body: evaluations.UploadRequest, caller: Scientist
    ) -> evaluations.EvaluationSetUpload:
        """A presigned PUT for your own evaluation set: safetensors with 'inputs' and 'labels'."""
        return evaluations.create_upload(caller, body)

    @people.get("/evaluations/{evaluation_id}", tags=["evaluations"])
    def evaluation_status(evaluation_id: Identifier, caller: Scientist) -> evaluations.EvaluationView:
        """Status, progress and, once completed, the headline numbers."""
        return evaluations.status(caller, evaluation_id)

    @people.get("/evaluations/{evaluation_id}/report", tags=["evaluations"])
    def download_report(
        evaluation_id: Identifier,
        caller: Scientist,
        fmt: Annotated[
            evaluations.ReportFormat,
            Query(alias="format", description="html (the page), json (the data) or csv (per sample)"),
        ] = "html",
    ) -> storage.Download:
        """A presigned URL for the report; 409 until the evaluation has completed.

        The JSON report is an `EvaluationReport` (see this document's schemas). The CSV has a row per
        sample: its index, label, clean prediction, whether it was classified correctly, whether it
        stayed correct against every attack of a norm at each epsilon (a column per norm and epsilon,
        `robust_linf_0.1`), and its minimal-perturbation estimate (`minimal_linf`, empty when none).
        """
        return evaluations.report(caller, evaluation_id, fmt)

    return people


def _device_routes(tokens: DeviceTokens, registrations_per_minute: int) -> APIRouter:
    Device = Annotated[DeviceIdentity, Depends(http.bearer_dependency(tokens.verify))]
    fleet = APIRouter(prefix="/v1/devices", tags=["devices"])

    @fleet.post("/token")
    def device_token(body: devices.TokenRequest) -> devices.DeviceToken:
        """Exchange the app's API key, a device id and an assertion signed with the device's key for a token.

        The first exchange of a device id registers its public key, and every later one must be
        signed with the same key: 401 for a bad, expired or replayed assertion, 409 for an id
        registered with another key, 429 (with Retry-After) past the API key's new registrations
        per minute.
        """
        return devices.exchange(body, tokens, registrations_per_minute)

    @fleet.get("/jobs")
    def open_jobs(caller: Device) -> list[jobs.OpenJob]:
        """The open training jobs for the device's app, each with its node's URL."""
        return jobs.open_for_dataset(caller.dataset_id)

    return fleet

"""A thin, typed client of the orchestrator's REST API."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import torch
from tqdm import tqdm

from cohort import aws
from cohort.domain.weights import encode


class CohortError(RuntimeError):
    """The API refused a request: ``status``, ``detail`` (a sentence) and, for an invalid request,
    ``errors`` (each problem as ``{"loc", "msg", "type"}``) say why."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.errors = errors or []


def describe_headline(evaluation: Mapping[str, Any]) -> str:
    """One line on an evaluation's outcome: the robust accuracy with its interval and budget, and
    whether the gradient-masking checks let it stand."""
    summary = evaluation.get("summary") or {}
    if evaluation.get("status") != "completed" or "robust_accuracy" not in summary:
        return (
            f"evaluation {evaluation.get('status')}: {evaluation.get('status_reason') or 'no headline yet'}"
        )
    norm, epsilon = next(
        (
            (key.removeprefix("headline_epsilon_"), value)
            for key, value in summary.items()
            if key.startswith("headline_epsilon_")
        ),
        ("", 0.0),
    )
    line = (
        f"robust accuracy {summary['robust_accuracy']:.1%} (95% CI {summary['robust_accuracy_ci95_low']:.1%} "
        f"to {summary['robust_accuracy_ci95_high']:.1%}) at {_NORMS.get(norm, norm)} ε = {epsilon:g}, "
        f"clean {summary['clean_accuracy']:.1%}"
    )
    if summary.get("headline_reliable", 1.0) < 1.0:
        failed = int(summary.get("gradient_masking_flags", 0))
        return (
            f"{line}; NOT reliable: {failed} gradient-masking check(s) failed, so read it as an upper bound "
            "(the report says what each found and what to try)"
        )
    return f"{line}; every gradient-masking check passed"


_NORMS = {"linf": "L∞", "l2": "L2"}


def sign_in(client_id: str, email: str, password: str) -> str:
    """A Cognito ID token for the user, by the USER_PASSWORD_AUTH flow."""
    result = aws.client("cognito-idp").initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )
    return result["AuthenticationResult"]["IdToken"]


class CohortClient:
    def __init__(self, base_url: str, id_token: str, timeout: float = 60.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {id_token}"}, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.is_error:
            try:
                body = response.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise CohortError(response.status_code, response.text)
            # The services answer an ErrorBody; API Gateway's own refusals say {"message": ...}.
            detail = body.get("detail") or body.get("message") or response.text
            raise CohortError(response.status_code, str(detail), body.get("errors"))
        return response.json()

    # -- app developers ---------------------------------------------------------------
    def register_dataset(
        self, app_name: str, attributes: list[dict], *, rows: int | None = None, seed: int | None = None
    ) -> dict:
        """Register the app's data; a sample of ``rows`` rows (1,000 unless given) is generated from it."""
        body: dict[str, Any] = {"app_name": app_name, "attributes": attributes}
        if rows is not None:
            body["rows"] = rows
        if seed is not None:
            body["seed"] = seed
        return self._request("POST", "/v1/datasets", json=body)

    def create_api_key(self, dataset_id: str) -> dict:
        return self._request("POST", f"/v1/datasets/{dataset_id}/api-keys")

    def api_keys(self, dataset_id: str) -> list[dict]:
        return self._request("GET", f"/v1/datasets/{dataset_id}/api-keys")

    def revoke_api_key(self, dataset_id: str, key_id: str) -> dict:
        return self._request("DELETE", f"/v1/datasets/{dataset_id}/api-keys/{key_id}")

    def forget_device(self, dataset_id: str, device_id: str) -> dict:
        """Delete a device's registered key, so that the id can register a new one (a phone that lost it)."""
        return self._request("DELETE", f"/v1/datasets/{dataset_id}/devices/{device_id}")

    def dataset_jobs(self, dataset_id: str) -> list[dict]:
        """The training jobs on your app's devices, newest first: their status and rounds, not their model."""
        return self._request("GET", f"/v1/datasets/{dataset_id}/jobs")

    def datasets(self, *, mine: bool = False) -> list[dict]:
        """Every dataset to train on; with ``mine``, the ones this app developer registered."""
        return self._request("GET", "/v1/datasets", params={"mine": mine} if mine else None)

    def dataset(self, dataset_id: str) -> dict:
        return self._request("GET", f"/v1/datasets/{dataset_id}")

    def wait_for_sample(self, dataset_id: str, *, timeout: float = 120.0) -> dict:
        """Poll until the dataset's sample is ready, or has failed; returns the dataset."""
        give_up_at = time.monotonic() + timeout
        while (dataset := self.dataset(dataset_id))["status"] == "registered":
            if time.monotonic() > give_up_at:
                raise TimeoutError(f"the sample of dataset {dataset_id} was not ready within {timeout:.0f}s")
            time.sleep(0.3)
        return dataset

    def download_sample(self, dataset_id: str, fmt: str = "csv") -> bytes:
        """The sample dataset as CSV or Parquet bytes (``fmt``: ``csv`` or ``parquet``)."""
        return self._download(f"/v1/datasets/{dataset_id}/sample", "sample", params={"format": fmt})

    # -- scientists -------------------------------------------------------------------
    def create_model(self, name: str, architecture: Mapping, weights: Mapping[str, torch.Tensor]) -> dict:
        """Register, upload the weights through the presigned URL, and commit."""
        created = self._request("POST", "/v1/models", json={"name": name, "architecture": dict(architecture)})
        return self._upload_and_commit(created, encode(weights), "weights")

    def import_onnx_model(self, name: str, onnx_file: bytes) -> dict:
        """Register an ONNX import, upload the file, and commit: the model comes back converted,
        with its architecture and ``import_notes``; 422 says what in the file cannot be imported."""
        created = self._request("POST", "/v1/models/imports", json={"name": name, "format": "onnx"})
        return self._upload_and_commit(created, onnx_file, "ONNX file")

    def _upload_and_commit(self, created: dict, content: bytes, what: str) -> dict:
        upload = httpx.put(
            created["upload_url"],
            content=content,
            headers={"Content-Type": "application/octet-stream"},
            timeout=self._http.timeout,
        )
        if upload.is_error:
            raise CohortError(upload.status_code, f"{what} upload failed: {upload.text[:300]}")
        return self._request("POST", f"/v1/models/{created['model']['model_id']}/commit")

    def models(self) -> list[dict]:
        return self._request("GET", "/v1/models")

    def model(self, model_id: str) -> dict:
        return self._request("GET", f"/v1/models/{model_id}")

    def start_training(
        self,
        model_id: str,
        dataset_id: str,
        client_config: Mapping,
        server_config: Mapping,
        *,
        evaluate_on_completion: Mapping | None = None,
    ) -> dict:
        """Start a job; with an evaluation spec in ``evaluate_on_completion``, evaluate the trained model.

        The job comes back ``starting``: its FL node is launched in the background
        (:meth:`wait_until_running` waits for it).
        """
        body: dict[str, Any] = {
            "model_id": model_id,
            "dataset_id": dataset_id,
            "client_config": dict(client_config),
            "server_config": dict(server_config),
        }
        if evaluate_on_completion is not None:
            body["evaluate_on_completion"] = dict(evaluate_on_completion)
        return self._request("POST", "/v1/jobs", json=body)

    def job(self, job_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def jobs(self) -> list[dict]:
        return self._request("GET", "/v1/jobs")

    def wait_until_running(self, job_id: str, *, timeout: float = 300.0) -> dict:
        """Poll until the job runs on a node that devices can find (or it has ended); returns the job."""
        give_up_at = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            node = job.get("node") or {}
            # The node marks the job running as it starts; its URL is recorded once its launch returns.
            if job["status"] in ("completed", "failed") or (
                job["status"] == "running" and node.get("health") in ("booting", "healthy")
            ):
                return job
            if time.monotonic() >= give_up_at:
                raise TimeoutError(
                    f"job {job_id} is still starting after {timeout:.0f}s; its node is "
                    f"{node.get('health', 'unknown')} ({node.get('detail') or 'no detail'})"
                )
            time.sleep(0.3)

    def wait_for_job(self, job_id: str, *, timeout: float = 600.0, progress: bool = True) -> dict:
        """Poll until the job completes or fails, with a progress bar over rounds."""
        job = self.job(job_id)
        with tqdm(
            total=job["total_rounds"], desc="federated rounds", unit="round", disable=not progress
        ) as bar:
            give_up_at = time.monotonic() + timeout
            while time.monotonic() < give_up_at:
                job = self.job(job_id)
                done = [r for r in job["rounds"] if r["status"] == "completed"]
                if len(done) > bar.n:
                    bar.set_postfix(
                        loss=f"{done[-1]['loss']:.3f}", acc=f"{done[-1]['accuracy']:.3f}", refresh=False
                    )
                    bar.update(len(done) - bar.n)
                if job["status"] in ("completed", "failed"):
                    return job
                time.sleep(0.3)
        raise TimeoutError(
            f"job {job_id} did not finish within {timeout:.0f}s; its status is {job['status']}"
        )

    def download_trained_model(self, job_id: str) -> bytes:
        return self._download(f"/v1/jobs/{job_id}/model", "trained model")

    # -- robustness evaluations -----------------------------------------------------------
    def submit_evaluation(
        self, model_id: str, spec: Mapping | None = None, *, job_id: str | None = None
    ) -> dict:
        """Queue a robustness evaluation of a model, or of a job's trained model with ``job_id``."""
        body: dict[str, Any] = {"model_id": model_id, "spec": dict(spec or {})}
        if job_id is not None:
            body["job_id"] = job_id
        return self._request("POST", "/v1/evaluations", json=body)

    def evaluation(self, evaluation_id: str) -> dict:
        return self._request("GET", f"/v1/evaluations/{evaluation_id}")

    def evaluations(self) -> list[dict]:
        return self._request("GET", "/v1/evaluations")

    def wait_for_evaluation(
        self, evaluation_id: str, *, timeout: float = 600.0, progress: bool = True
    ) -> dict:
        """Poll until the evaluation completes or fails, with a progress bar and, at the end, a line on
        the headline (``describe_headline``).

        An evaluation a training job asked for is queued moments after the job completes, so a
        404 in the first seconds means "not yet", not "never".
        """
        give_up_at = time.monotonic() + timeout
        with tqdm(total=100, desc="robustness evaluation", unit="%", disable=not progress) as bar:
            while True:
                try:
                    evaluation = self.evaluation(evaluation_id)
                except CohortError as exc:
                    if exc.status != 404 or time.monotonic() > give_up_at:
                        raise
                    evaluation = {"status": "not queued yet", "progress": 0.0}
                bar.update(round(100 * evaluation["progress"]) - bar.n)
                if evaluation["status"] in ("completed", "failed"):
                    if progress:
                        bar.write(describe_headline(evaluation))
                    return evaluation
                if time.monotonic() > give_up_at:
                    raise TimeoutError(
                        f"evaluation {evaluation_id} did not finish within {timeout:.0f}s; "
                        f"its status is {evaluation['status']}"
                    )
                time.sleep(0.3)

    def download_report(self, evaluation_id: str, fmt: Literal["html", "json", "csv"] = "html") -> bytes:
        """The evaluation's report: ``html`` for people, ``json`` for machines, ``csv`` per sample.

        The CSV has a row per evaluated sample: ``index``, ``label``, ``clean_prediction``,
        ``clean_correct``, a ``robust_<norm>_<epsilon>`` column per norm and epsilon (true when the
        sample stayed correct against every attack of that norm), and ``minimal_linf`` (empty when
        not searched or never broken)::

            rows = csv.DictReader(io.StringIO(client.download_report(evaluation_id, "csv").decode()))
        """
        return self._download(f"/v1/evaluations/{evaluation_id}/report", "report", params={"format": fmt})

    def upload_evaluation_set(self, inputs: torch.Tensor, labels: torch.Tensor) -> str:
        """Upload an evaluation set (inputs in [0, 1], integer labels); returns the key for spec.dataset."""
        data = encode({"inputs": inputs.float(), "labels": labels.long()})
        upload = self._request("POST", "/v1/evaluations/uploads", json={"size_bytes": len(data)})
        response = httpx.put(
            upload["upload_url"],
            content=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=self._http.timeout,
        )
        if response.is_error:
            raise CohortError(response.status_code, f"evaluation set upload failed: {response.text[:300]}")
        return upload["dataset"]

    def _download(self, path: str, what: str, **kwargs: Any) -> bytes:
        """GET the presigned link the API hands out at ``path``, then the object behind it."""
        link = self._request("GET", path, **kwargs)
        response = httpx.get(link["url"], timeout=self._http.timeout)
        if response.is_error:
            raise CohortError(response.status_code, f"{what} download failed")
        return response.content

"""The FL node's HTTP API and process entrypoint.

Routes live under ``/jobs/{job_id}`` so that, on AWS, the internal load balancer
can route each job's path to its own node.
"""

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import typer
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from cohort.catalogue import NODE_PORT
from cohort.domain.identifiers import Identifier
from cohort.domain.records import bind_tables
from cohort.domain.training import Availability
from cohort.federated.aws_store import AwsNodeStore
from cohort.federated.node import (
    CycleAccepted,
    CycleRejected,
    DeviceReport,
    FederatedNode,
    ReportFate,
    ReportReceipt,
)
from cohort.federated.node_store import NodeStore
from cohort.settings import Settings, get_settings
from cohort.web import http
from cohort.web.auth import DeviceIdentity, DeviceTokens

log = logging.getLogger(__name__)

# How often the deadline watcher wakes at most; it sleeps less when a deadline is nearer.
_TICK_SECONDS = 0.25
# After the last round, keep answering briefly so devices learn the job is over.
_LINGER_SECONDS = 3.0


class CycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    availability: Availability


def create_node_app(
    job_id: str,
    on_finished: Callable[[], None] = lambda: None,
    *,
    store: NodeStore | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The node of one job. By default it keeps its state in DynamoDB and S3 and takes its settings
    from the environment; tests pass a store and settings of their own, and need no AWS."""
    settings = settings or get_settings()
    tokens = DeviceTokens(settings)
    node = FederatedNode(store or AwsNodeStore(job_id))
    stop_watching = threading.Event()

    def watch_deadlines() -> None:
        # It sleeps on the stop event, so an app shutting down never waits out a tick.
        while not stop_watching.wait(min(_TICK_SECONDS, node.seconds_to_deadline() + 0.01)):
            if node.finished.is_set():
                node.announce()
                stop_watching.wait(_LINGER_SECONDS)
                on_finished()
                return
            try:
                node.tick()
            except Exception:
                log.exception("closing the round failed; retrying on the next tick")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if store is None:
            bind_tables(settings)  # at start-up, never at import: the environment is set by then
        node.start()
        watcher = threading.Thread(target=watch_deadlines, name="deadline-watcher", daemon=True)
        watcher.start()
        yield
        stop_watching.set()
        watcher.join(timeout=5)

    Device = Annotated[DeviceIdentity, Depends(http.bearer_dependency(tokens.verify))]
    router = APIRouter(prefix=f"/jobs/{job_id}", tags=["devices"])

    @router.post("/cycle", response_model=CycleAccepted | CycleRejected)
    def request_cycle(body: CycleRequest, caller: Device) -> CycleAccepted | CycleRejected:
        """Ask for a place in the current round."""
        return node.request_cycle(caller.device_id, caller.dataset_id, body.availability)

    @router.put(
        "/reports/{request_key}",
        response_model=ReportReceipt,
        status_code=202,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                "description": "The weight delta (trained minus received) in safetensors",
            }
        },
    )
    # The route reads its body itself, once the device and its key are known, under the job's model's
    # own limit; max_update_bytes is only the ceiling for every job.
    @http.own_body_limit(settings.max_update_bytes)
    async def submit_report(
        request: Request,
        request_key: Identifier,
        caller: Device,
        num_samples: Annotated[int, Query(ge=1)],
        loss: Annotated[float, Query(ge=0)],
        accuracy: Annotated[float, Query(ge=0, le=1)],
    ) -> ReportReceipt:
        """Report a round's update. Idempotent on the request key: a replay is counted once.

        The token and the request key are checked before a byte of the body is read; a report that
        is refused, or counted already, is answered without reading it."""
        report = DeviceReport(num_samples=num_samples, loss=loss, accuracy=accuracy)
        device, dataset = caller.device_id, caller.dataset_id
        counted = await run_in_threadpool(node.expect_report, device, dataset, request_key)
        if counted is not None:
            return counted
        body = await http.read_body(request, node.max_update_bytes, what="an update for this job's model")
        return await run_in_threadpool(node.submit_report, device, dataset, request_key, report, body)

    @router.get("/reports/{request_key}", response_model=ReportFate)
    def report_fate(
        request_key: Identifier,
        caller: Device,
        round_number: Annotated[int, Query(alias="round", ge=1, description="The receipt's round")],
        attempt: Annotated[int, Query(ge=1, description="The receipt's attempt")],
    ) -> ReportFate:
        """What became of a report: pending, counted in its round, discarded (and why), or never
        received. Only the device the request key was issued to may ask."""
        return node.report_fate(caller.device_id, caller.dataset_id, request_key, round_number, attempt)

    app = FastAPI(
        title="Cohort FL node",
        description="PyGrid-style rounds for one training job.",
        lifespan=lifespan,
    )
    app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return Response("ok")

    # A report after the round's deadline, or once the job has ended, is refused with 409.
    late_report = {f"PUT {router.prefix}/reports/{{request_key}}": (409,)}
    http.configure(app, "fl-node", max_body_bytes=settings.max_request_bytes, rule_statuses=late_report)
    return app


def serve(
    job_id: Annotated[str, typer.Option(help="The training job this node runs")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = NODE_PORT,
) -> None:
    """Run one FL node until its job completes or fails."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server: uvicorn.Server | None = None

    def stop() -> None:
        if server is not None:
            server.should_exit = True

    app = create_node_app(job_id, on_finished=stop)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    server.run()


if __name__ == "__main__":
    typer.run(serve)

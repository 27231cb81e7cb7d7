"""The ``cohort`` command: run the local platform and the demo."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pynamodb.exceptions import PynamoDBException

from cohort.domain.records import TrainingJobRecord, utcnow
from cohort.local.platform import STATE_FILE, LocalPlatform, PlatformState, use_emulator
from cohort.processes import is_alive
from cohort.settings import get_settings

app = typer.Typer(
    help="Cohort: federated learning and robustness evaluation.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

Home = Annotated[Path, typer.Option(envvar="COHORT_HOME", help="Where state and logs live")]
DEFAULT_HOME = Path(".cohort")


@app.command()
def up(
    home: Home = DEFAULT_HOME,
    emulator_port: Annotated[int | None, typer.Option(help="Default: a free port")] = None,
    port: Annotated[int | None, typer.Option(help="Orchestrator port; default: a free port")] = None,
    website_port: Annotated[int | None, typer.Option(help="Dashboard port; default: a free port")] = None,
) -> None:
    """Start the emulator, provision every resource, run the orchestrator and serve the dashboard,
    until Ctrl-C."""
    existing = PlatformState.load(home)
    if existing and is_alive(existing.pids.get("platform", -1)):
        raise typer.BadParameter(
            f"already running (pid {existing.pids['platform']}); run 'cohort down' first"
        )
    platform = LocalPlatform(home, emulator_port, port, website_port)
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        state = platform.start()
        typer.echo(f"emulator      {state.emulator_url}")
        typer.echo(f"orchestrator  {state.orchestrator_url}  (docs at /docs, metrics at /metrics)")
        typer.echo(f"user pool     {state.user_pool_id}, client {state.user_pool_client_id}")
        _echo_dashboard(state)
        if not state.website_url:
            typer.echo(f"              ({platform.website_dir} has no index.html)")
        typer.echo(f"logs          {platform.log_dir}")
        typer.echo(f"outbox        {platform.outbox}  (every email sent, as .eml files)")
        typer.echo("Ctrl-C or 'cohort down' stops everything.")
        while not stop:
            time.sleep(0.2)
    finally:
        platform.stop()
        typer.echo("stopped")


def _echo_dashboard(state: PlatformState) -> None:
    if state.website_url:
        typer.echo(f"dashboard     {state.website_url}")
        typer.echo(f"cognito       {state.cognito_url}  (sign-up codes arrive in the outbox)")
    else:
        typer.echo(
            "dashboard     not built: build it with 'make website' (cd website && npm ci && npm run build), "
            "then run 'cohort up' again"
        )


@app.command()
def down(home: Home = DEFAULT_HOME) -> None:
    """Stop a running 'cohort up' and every process it started."""
    state = PlatformState.load(home)
    if state is None:
        typer.echo("nothing is running")
        return
    platform_pid = state.pids.get("platform", -1)
    if is_alive(platform_pid):
        os.kill(platform_pid, signal.SIGTERM)
        for _ in range(150):
            if not is_alive(platform_pid):
                break
            time.sleep(0.2)
    for pid in state.pids.values():  # anything left behind by a killed 'cohort up'
        if is_alive(pid):
            os.kill(pid, signal.SIGTERM)
    (home / STATE_FILE).unlink(missing_ok=True)
    typer.echo("stopped")


@app.command()
def status(home: Home = DEFAULT_HOME) -> None:
    """Show what is running and where."""
    state = PlatformState.load(home)
    if state is None:
        typer.echo("not running; start it with 'cohort up'")
        raise typer.Exit(1)
    # Each server's address, and where its health is read.
    servers = {
        "emulator": (state.emulator_url, f"{state.emulator_url}/moto-api/"),
        "orchestrator": (state.orchestrator_url, f"{state.orchestrator_url}/healthz"),
        "cognito-bridge": (state.cognito_url, f"{state.cognito_url}/healthz"),
        "website": (state.website_url, state.website_url),
    }
    for name, pid in state.pids.items():
        url, health_url = servers.get(name, ("", ""))
        health = _health(health_url) if url else ""
        alive = "running" if is_alive(pid) else "stopped"
        typer.echo(f"{name:<14} pid {pid:<8} {alive:<8} {health:<14} {url}")
    _echo_dashboard(state)
    typer.echo(
        f"user pool     {state.user_pool_id}, client {state.user_pool_client_id}, region {state.region}"
    )
    if state.outbox:
        emails = len(list(Path(state.outbox).glob("*.eml")))
        typer.echo(f"outbox        {state.outbox}  ({emails} emails)")
    _show_fl_nodes(state)


def _health(url: str) -> str:
    try:
        return "healthy" if httpx.get(url, timeout=2).status_code < 500 else "unhealthy"
    except httpx.TransportError:
        return "not answering"


def _show_fl_nodes(state: PlatformState) -> None:
    """The jobs that have or need an FL node, with the node's health as the supervisor last found it."""
    use_emulator(state.emulator_url, state.region)
    try:
        nodes = list(TrainingJobRecord.by_live_node.query(get_settings().launcher))
    except PynamoDBException as exc:
        typer.echo(f"FL nodes      unknown: the jobs table could not be read ({exc.msg})")
        return
    typer.echo(f"FL nodes      {len(nodes)}")
    for job in nodes:
        typer.echo(
            f"  job {job.job_id}  {job.status:<9} round {int(job.current_round):<4} "
            f"node {_node_health(job)}  {job.node_url or ''}".rstrip()
        )


def _node_health(job: TrainingJobRecord) -> str:
    """E.g. "healthy (launch 1 of 3, checked 4s ago)" or "down (launch 2 of 3, ...): why"."""
    if job.node_health is None:
        return "unsupervised"
    facts = [f"launch {int(job.node_launches or 0)} of {get_settings().max_node_launches}"]
    if job.node_checked_at is not None:
        facts.append(f"checked {(utcnow() - job.node_checked_at).total_seconds():.0f}s ago")
    detail = f": {job.node_detail}" if job.node_detail else ""
    return f"{job.node_health} ({', '.join(facts)}){detail}"


@app.command()
def openapi(
    out: Annotated[Path, typer.Option(help="Folder for the documents")] = Path("docs/openapi"),
) -> None:
    """Write the OpenAPI documents of the orchestrator and the FL node."""
    from cohort.openapi import write_documents

    for path in write_documents(out):
        typer.echo(f"wrote {path}")


@app.command()
def demo(
    home: Annotated[Path, typer.Option(help="Where state and logs live")] = Path(".cohort/demo"),
) -> None:
    """Run the end-to-end demo on a fresh local platform."""
    from cohort.local.demo import main

    main(home)


if __name__ == "__main__":
    app()

"""Runs the Cohort orchestrator API (cohort.services.orchestrator) under uvicorn."""

import os

import uvicorn

from cohort.catalogue import ORCHESTRATOR_PORT


def main() -> None:
    uvicorn.run(
        "cohort.services.orchestrator:create_app",
        factory=True,
        host="0.0.0.0",  # noqa: S104 - the task's own ENI; only the load balancer's security group reaches it
        port=int(os.environ.get("PORT", str(ORCHESTRATOR_PORT))),
        # Behind the load balancer: take the client address and scheme from X-Forwarded-*.
        # Trusting any sender is safe only because nothing but the load balancer can connect.
        proxy_headers=True,
        forwarded_allow_ips="*",
    )


if __name__ == "__main__":
    main()

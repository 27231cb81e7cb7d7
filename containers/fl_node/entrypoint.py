"""Runs the FL node (cohort.federated.node_app) of the training job named by COHORT_JOB_ID."""

import os
import sys

from cohort.catalogue import NODE_PORT
from cohort.federated.node_app import serve


def main() -> None:
    job_id = os.environ.get("COHORT_JOB_ID", "").strip()
    if not job_id:
        sys.exit("fl_node: COHORT_JOB_ID is not set; it names the training job this node runs")
    # All interfaces of the task's own ENI; only the load balancer's security group reaches it.
    serve(job_id=job_id, host="0.0.0.0", port=NODE_PORT)  # noqa: S104


if __name__ == "__main__":
    main()

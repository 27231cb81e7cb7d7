"""Draw Cohort's AWS deployment to ``images/architecture.png``.

One cluster per CDK stack, with the edges a new engineer needs: how people and
devices come in, how a training job reaches its FL node, and where state and
notifications go. Table, bucket and queue names come from the catalogue, so the
picture lists what the stacks deploy.

Regenerate with ``make diagram`` (needs Graphviz's ``dot`` on the PATH).
"""

from __future__ import annotations

from pathlib import Path

from diagrams import Cluster, Diagram, Edge
from diagrams.aws.compute import ECS, EC2AutoScaling, Fargate, Lambda
from diagrams.aws.database import Dynamodb
from diagrams.aws.engagement import SES
from diagrams.aws.integration import SNS, SQS
from diagrams.aws.management import Cloudwatch
from diagrams.aws.mobile import Amplify
from diagrams.aws.network import (
    APIGateway,
    CloudFront,
    ElbApplicationLoadBalancer,
    ElbNetworkLoadBalancer,
    Endpoint,
)
from diagrams.aws.security import WAF, Cognito
from diagrams.aws.storage import S3, ElasticFileSystemEFS
from diagrams.generic.device import Mobile
from diagrams.onprem.client import Users

from cohort.catalogue import Bucket, Group, Queue, Table

OUTPUT = Path(__file__).parent / "architecture"

GRAPH = {
    "splines": "spline",
    "pad": "0.3",
    "nodesep": "0.3",
    "ranksep": "0.55",
    "fontsize": "22",
    "dpi": "86",
}
CLUSTER = {"fontsize": "14", "margin": "20"}
NODE = {"fontsize": "12"}
EDGE = {"fontsize": "11"}


def _listing(title: str, names: list[str], per_line: int = 3) -> str:
    """A node label: the title, then the names a few to a line."""
    lines = [" · ".join(names[i : i + per_line]) for i in range(0, len(names), per_line)]
    return "\n".join([title, *lines])


def _compute(vpc_link: Endpoint) -> tuple[Fargate, Fargate, ECS]:
    with Cluster("compute: VPC, private subnets", graph_attr=CLUSTER):
        Endpoint("VPC endpoints\nS3 · DynamoDB\nSQS · ECR")
        nlb = ElbNetworkLoadBalancer("NLB")
        alb = ElbApplicationLoadBalancer("internal ALB")
        with Cluster("ECS cluster"):
            orchestrator = Fargate("orchestrator\nservice\nchecks device tokens")
            nodes = Fargate("FL nodes\ntask per job")
            with Cluster("GPU capacity provider"):
                evaluator = ECS("evaluator\nservice")
                gpus = EC2AutoScaling("ECS GPU AMI\nscales from 0")
                # Same rank as the evaluator, so the compute cluster stays left of the queues.
                evaluator - Edge(style="dotted", minlen="0") - gpus
        vpc_link >> nlb >> alb
        alb >> Edge(label="/v1/*") >> orchestrator
        alb >> Edge(label="/jobs/{job_id}/*") >> nodes
        orchestrator >> Edge(xlabel="RunTask\n+ ALB rule", color="darkgreen", constraint="false") >> nodes
    return orchestrator, nodes, evaluator


def _auth() -> tuple[Cognito, Lambda]:
    with Cluster("auth", graph_attr=CLUSTER):
        groups = ", ".join(group.value for group in Group)
        pool = Cognito(f"user pool\nhosted UI\ngroups: {groups}")
        signup = Lambda("signup")
        pool >> Edge(label="post-confirmation", style="dashed") >> signup
    return pool, signup


def _jupyter() -> tuple[CloudFront, ECS]:
    with Cluster("jupyter", graph_attr=CLUSTER):
        cdn = CloudFront("CloudFront\n(VPC origin)")
        hub = ECS("JupyterHub\nbehind its own ALB")
        cdn >> hub >> ElasticFileSystemEFS("notebooks\nEFS")
    return cdn, hub


def draw() -> None:
    with Diagram(
        "Cohort on AWS",
        filename=str(OUTPUT),
        outformat="png",
        show=False,
        direction="LR",
        graph_attr=GRAPH,
        node_attr=NODE,
        edge_attr=EDGE,
    ):
        with Cluster("Users", graph_attr=CLUSTER):
            devices = Mobile("mobile devices\n(device token)")
            developer = Users("app developer")
            scientist = Users("data scientist\nbrowser · SDK\nJupyterHub")

        with Cluster("api", graph_attr=CLUSTER):
            waf = WAF("WAF")
            api = APIGateway("REST API\nCognito authorizer")
            vpc_link = Endpoint("VPC link")
            waf >> api >> vpc_link

        orchestrator, nodes, evaluator = _compute(vpc_link)

        with Cluster("queues", graph_attr=CLUSTER):
            evaluations = SQS(f"{Queue.EVALUATIONS.value}\n+ DLQ")
            notifications = SQS(f"{Queue.NOTIFICATIONS.value}\n+ DLQ")

        # The listings are wider than an icon: a wider margin keeps them inside the cluster.
        with Cluster("storage", graph_attr={**CLUSTER, "margin": "32"}):
            tables = Dynamodb(_listing("DynamoDB", [table.value for table in Table], per_line=2))
            buckets = S3(_listing("S3", [bucket.value for bucket in Bucket]))

        with Cluster("functions", graph_attr=CLUSTER):
            datasets = Lambda("dataset generation")
            email = Lambda("email")
            ses = SES("SES")

        pool, signup = _auth()

        with Cluster("website", graph_attr=CLUSTER):
            website = Amplify("dashboard\nAmplify Hosting")

        jupyter_url, jupyterhub = _jupyter()

        with Cluster("monitoring", graph_attr=CLUSTER):
            alarms = Cloudwatch("dashboard\n+ alarms")
            alarms >> SNS("alarm topic")

        api >> Edge(label="authorize people", style="dotted") >> pool
        scientist >> Edge(label="sign in") >> pool
        scientist >> website
        scientist >> Edge(label="notebooks") >> jupyter_url
        [scientist, developer, devices] >> waf
        website >> Edge(label="REST") >> waf
        api >> Edge(label="route") >> email

        orchestrator >> [tables, buckets]
        orchestrator >> Edge(label="enqueue") >> evaluations
        evaluator << Edge(label="poll; scales on depth") << evaluations
        evaluator >> [tables, buckets]
        nodes >> [tables, buckets]
        nodes >> Edge(label="evaluate trained model") >> evaluations
        nodes >> Edge(label="job finished") >> notifications
        evaluator >> Edge(label="report ready") >> notifications
        notifications >> email >> ses

        signup >> Edge(label="profile") >> tables
        tables >> Edge(label=f"{Table.DATASETS.value} stream") >> datasets
        datasets >> Edge(label=Bucket.SAMPLES.value) >> buckets
        jupyterhub >> Edge(label="OAuth", style="dotted") >> pool
        jupyterhub >> Edge(label=f"{Bucket.SAMPLES.value} (read-only)") >> buckets


if __name__ == "__main__":
    draw()

"""FL nodes as ECS Fargate tasks, reachable through the internal load balancer.

Each job gets one task in the private subnets, one ``ip`` target group holding
the task's address, and one listener rule that forwards ``/jobs/{job_id}/*`` to
that group. Devices use the public base URL (API Gateway, VPC link, internal
ALB) and never see the task's private IP. ``check`` reads the task's state from
ECS; ``stop`` removes all three.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from cohort import aws
from cohort.catalogue import NODE_PORT
from cohort.services.launcher import LaunchedNode, Liveness, NodeCheck
from cohort.settings import Settings

log = logging.getLogger(__name__)

STARTED_BY = "cohort-orchestrator"
JOB_TAG = "cohort:job-id"
STOP_REASON = "training job ended"
# ALB listener rule priorities run from 1 to 50,000.
MAX_RULE_PRIORITY = 50_000
_TARGET_GROUP_NAME_MAX = 32
_TARGET_GROUP_PREFIX = "cohort-"
_PRIORITY_ATTEMPTS = 5
# A task's lastStatus on its way up, and on its way down
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle.html).
_BOOTING_STATUSES = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
_STOPPING_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED", "DELETED"})


class EcsLauncherConfigError(ValueError):
    """The settings lack something the ECS launcher needs."""


def job_path_pattern(job_id: str) -> str:
    return f"/jobs/{job_id}/*"


def target_group_name(job_id: str) -> str:
    """A valid, per-job target group name (at most 32 characters).

    Job ids are uuid4 hex, so their first 25 characters are already unique; any
    other id is cleaned up and, when too long, shortened with a hash suffix so
    that two ids sharing a prefix never share a target group.
    """
    room = _TARGET_GROUP_NAME_MAX - len(_TARGET_GROUP_PREFIX)
    cleaned = re.sub(r"-+", "-", re.sub(r"[^A-Za-z0-9]", "-", job_id)).strip("-")
    if re.fullmatch(r"[0-9a-f]{32}", job_id):
        suffix = job_id[:room]
    elif cleaned == job_id and len(job_id) <= room:
        suffix = cleaned
    else:
        digest = hashlib.sha256(job_id.encode()).hexdigest()[:8]
        head = cleaned[: room - len(digest) - 1].strip("-")
        suffix = f"{head}-{digest}" if head else digest
    return f"{_TARGET_GROUP_PREFIX}{suffix}"


def preferred_rule_priority(job_id: str) -> int:
    """Where the job's rule goes if that slot is free: stable across retries and processes."""
    return int(hashlib.sha256(job_id.encode()).hexdigest()[:12], 16) % MAX_RULE_PRIORITY + 1


def free_rule_priority(preferred: int, used: set[int]) -> int:
    """The first priority at or after ``preferred`` (wrapping around) that no rule uses."""
    for offset in range(MAX_RULE_PRIORITY):
        candidate = (preferred - 1 + offset) % MAX_RULE_PRIORITY + 1
        if candidate not in used:
            return candidate
    raise RuntimeError("every listener rule priority is taken; too many FL nodes are running")


@dataclass(frozen=True)
class NodeResources:
    """What ``stop`` must remove; serialised into :attr:`LaunchedNode.ref`."""

    task_arn: str = ""
    target_group_arn: str = ""
    rule_arn: str = ""

    def to_ref(self) -> str:
        return json.dumps(
            {"task": self.task_arn, "target_group": self.target_group_arn, "rule": self.rule_arn},
            separators=(",", ":"),
        )

    @classmethod
    def from_ref(cls, ref: str) -> NodeResources:
        try:
            data = json.loads(ref)
        except ValueError:
            # A bare task ARN, from a record written before refs were JSON.
            return cls(task_arn=ref if ref.startswith("arn:") else "")
        if not isinstance(data, dict):
            return cls()
        return cls(
            task_arn=str(data.get("task") or ""),
            target_group_arn=str(data.get("target_group") or ""),
            rule_arn=str(data.get("rule") or ""),
        )


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class EcsLauncher:
    """Runs each job's FL node as a Fargate task and routes ``/jobs/{job_id}/*`` to it."""

    def __init__(self, settings: Settings, ip_timeout: float = 90.0, poll_interval: float = 2.0) -> None:
        missing = [
            hint
            for value, hint in (
                (settings.ecs_subnets, "COHORT_ECS_SUBNETS (a JSON list of private subnet ids)"),
                (settings.ecs_security_groups, "COHORT_ECS_SECURITY_GROUPS (a JSON list of group ids)"),
                (settings.ecs_node_task_definition, "COHORT_ECS_NODE_TASK_DEFINITION (family or ARN)"),
                (settings.ecs_listener_arn, "COHORT_ECS_LISTENER_ARN (the internal ALB's listener)"),
                (settings.ecs_vpc_id, "COHORT_ECS_VPC_ID (the VPC of the subnets)"),
            )
            if not value
        ]
        if missing:
            raise EcsLauncherConfigError("the ECS launcher is not configured; set " + ", ".join(missing))
        self._settings = settings
        self._cluster = settings.catalogue.ecs_cluster
        self._ip_timeout = ip_timeout
        self._poll_interval = poll_interval
        self._public_base_url = settings.node_public_base_url

    @property
    def _ecs(self) -> Any:
        return aws.client("ecs")

    @property
    def _elbv2(self) -> Any:
        return aws.client("elbv2")

    def node_url(self, job_id: str) -> str:
        return f"{self._public_base_url_of_api().rstrip('/')}/jobs/{job_id}"

    def _public_base_url_of_api(self) -> str:
        """The URL devices call: set directly, or published in SSM by the API stack.

        The API is deployed after the orchestrator it fronts, so its URL is read
        when the first node launches, not when the orchestrator starts.
        """
        if not self._public_base_url:
            name = self._settings.catalogue.public_api_url_parameter
            try:
                self._public_base_url = aws.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as error:
                raise EcsLauncherConfigError(
                    f"devices cannot reach FL nodes yet: SSM parameter {name} ({_error_code(error)}) "
                    "holds the public API URL once the API stack is deployed; "
                    "deploy it, or set COHORT_NODE_PUBLIC_BASE_URL"
                ) from error
        return self._public_base_url

    def launch(self, job_id: str, number: int) -> LaunchedNode:
        url = self.node_url(job_id)  # before anything is started: no URL, no node
        task_arn = self._run_task(job_id, number)
        resources = NodeResources(task_arn=task_arn)
        try:
            # The target group is created while the task is still provisioning.
            resources = NodeResources(task_arn, self._ensure_target_group(job_id))
            ip = self._wait_for_private_ip(job_id, task_arn)
            self._route_only_to(resources.target_group_arn, ip)
            rule_arn = self._ensure_listener_rule(job_id, resources.target_group_arn)
            resources = NodeResources(task_arn, resources.target_group_arn, rule_arn)
        except Exception:
            # Don't leave a paid task or a half-built route behind a failed launch.
            self._remove(resources, best_effort=True)
            raise
        log.info("FL node for job %s is task %s, routed via rule %s", job_id, task_arn, rule_arn)
        return LaunchedNode(url=url, ref=resources.to_ref())

    def check(self, job_id: str, node: LaunchedNode) -> NodeCheck:
        """The task's state as ECS reports it: booting, running, or stopping and stopped."""
        task_arn = NodeResources.from_ref(node.ref).task_arn
        if not task_arn:
            return NodeCheck(Liveness.DEAD, "its task is not known")
        described = self._ecs.describe_tasks(cluster=self._cluster, tasks=[task_arn])
        tasks = described.get("tasks") or []
        if not tasks:
            return NodeCheck(Liveness.DEAD, f"its task {task_arn} is gone from cluster {self._cluster}")
        task = tasks[0]
        status = task.get("lastStatus", "")
        if status in _STOPPING_STATUSES or task.get("desiredStatus") == "STOPPED":
            reason = task.get("stoppedReason") or task.get("stopCode") or "no reason given"
            return NodeCheck(Liveness.DEAD, f"its task is {status.lower() or 'stopping'}: {reason}")
        if status in _BOOTING_STATUSES:
            return NodeCheck(Liveness.BOOTING, f"its task is {status.lower()}")
        return NodeCheck(Liveness.HEALTHY)

    def stop(self, job_id: str, ref: str) -> None:
        resources = NodeResources.from_ref(ref) if ref else NodeResources()
        if not resources.rule_arn or not resources.target_group_arn:
            resources = self._discover(job_id, resources)
        self._remove(resources, best_effort=False)

    # -- ECS ------------------------------------------------------------------

    def _run_task(self, job_id: str, number: int) -> str:
        container = self._settings.catalogue.fl_node_container
        command = [
            "python",
            "-m",
            "cohort.federated.node_app",
            "--job-id",
            job_id,
            "--host",
            "0.0.0.0",  # noqa: S104 - the task's own ENI; only the ALB's security group reaches it
            "--port",
            str(NODE_PORT),
        ]
        response = self._ecs.run_task(
            cluster=self._cluster,
            taskDefinition=self._settings.ecs_node_task_definition,
            launchType="FARGATE",
            count=1,
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": list(self._settings.ecs_subnets),
                    "securityGroups": list(self._settings.ecs_security_groups),
                    "assignPublicIp": "DISABLED",
                }
            },
            overrides={"containerOverrides": [{"name": container, "command": command}]},
            startedBy=STARTED_BY,
            tags=[{"key": JOB_TAG, "value": job_id}],
            # A retried call for the same launch returns its task instead of a second one; a
            # relaunch (a new number) gets a new task.
            clientToken=_client_token(job_id, number),
        )
        failures = response.get("failures") or []
        tasks = response.get("tasks") or []
        if failures or not tasks:
            reasons = "; ".join(
                f"{failure.get('reason', 'unknown')}"
                + (f" ({failure['detail']})" if failure.get("detail") else "")
                + (f" for {failure['arn']}" if failure.get("arn") else "")
                for failure in failures
            )
            raise RuntimeError(
                f"ECS could not start the FL node for job {job_id} on cluster {self._cluster}: "
                f"{reasons or 'no task was started'}"
            )
        return str(tasks[0]["taskArn"])

    def _wait_for_private_ip(self, job_id: str, task_arn: str) -> str:
        """Poll until Fargate has attached the task's ENI, bounded in both time and calls."""
        attempts = max(1, math.ceil(self._ip_timeout / self._poll_interval))
        deadline = time.monotonic() + self._ip_timeout
        for attempt in range(attempts):
            described = self._ecs.describe_tasks(cluster=self._cluster, tasks=[task_arn])
            tasks = described.get("tasks") or []
            if tasks:
                task = tasks[0]
                ip = _private_ip(task)
                if ip:
                    return ip
                if task.get("lastStatus") == "STOPPED":
                    reason = task.get("stoppedReason") or task.get("stopCode") or "no reason given"
                    raise RuntimeError(
                        f"the FL node task for job {job_id} stopped before it started: {reason}"
                    )
            if attempt + 1 < attempts and time.monotonic() < deadline:
                time.sleep(self._poll_interval)
            else:
                break
        raise RuntimeError(
            f"the FL node task for job {job_id} got no private IP address within {self._ip_timeout:g}s"
        )

    # -- Load balancer ----------------------------------------------------------

    def _ensure_target_group(self, job_id: str) -> str:
        name = target_group_name(job_id)
        try:
            created = self._elbv2.create_target_group(
                Name=name,
                Protocol="HTTP",
                Port=NODE_PORT,
                VpcId=self._settings.ecs_vpc_id,
                TargetType="ip",
                HealthCheckProtocol="HTTP",
                HealthCheckPath="/healthz",
                Matcher={"HttpCode": "200"},
                Tags=[{"Key": JOB_TAG, "Value": job_id}],
            )
        except ClientError as error:
            # A retried launch: AWS answers identical requests with the existing group,
            # but some implementations refuse the duplicate name instead.
            if _error_code(error) != "DuplicateTargetGroupName":
                raise
            existing = self._target_group_arn_by_name(name)
            if existing is None:
                raise
            return existing
        return str(created["TargetGroups"][0]["TargetGroupArn"])

    def _route_only_to(self, target_group_arn: str, ip: str) -> None:
        self._elbv2.register_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": ip, "Port": NODE_PORT}])
        # A relaunch reuses the group; an earlier task's address must not keep receiving devices.
        health = self._elbv2.describe_target_health(TargetGroupArn=target_group_arn)
        stale = [
            {"Id": entry["Target"]["Id"], "Port": entry["Target"].get("Port", NODE_PORT)}
            for entry in health.get("TargetHealthDescriptions") or []
            if entry["Target"]["Id"] != ip
        ]
        if stale:
            self._elbv2.deregister_targets(TargetGroupArn=target_group_arn, Targets=stale)

    def _target_group_arn_by_name(self, name: str) -> str | None:
        try:
            found = self._elbv2.describe_target_groups(Names=[name])
        except ClientError as error:
            if _error_code(error) == "TargetGroupNotFound":
                return None
            raise
        groups = found.get("TargetGroups") or []
        return str(groups[0]["TargetGroupArn"]) if groups else None

    def _listener_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"ListenerArn": self._settings.ecs_listener_arn}
        while True:
            page = self._elbv2.describe_rules(**kwargs)
            rules.extend(page.get("Rules") or [])
            marker = page.get("NextMarker")
            if not marker:
                return rules
            kwargs["Marker"] = marker

    def _ensure_listener_rule(self, job_id: str, target_group_arn: str) -> str:
        pattern = job_path_pattern(job_id)
        forward = [{"Type": "forward", "TargetGroupArn": target_group_arn}]
        for attempt in range(_PRIORITY_ATTEMPTS):
            rules = self._listener_rules()
            existing = next((rule for rule in rules if pattern in _path_patterns(rule)), None)
            if existing is not None:
                # A retried launch: point the job's rule at this target group.
                self._elbv2.modify_rule(RuleArn=existing["RuleArn"], Actions=forward)
                return str(existing["RuleArn"])
            used = {int(rule["Priority"]) for rule in rules if str(rule.get("Priority", "")).isdigit()}
            priority = free_rule_priority(preferred_rule_priority(job_id), used)
            try:
                created = self._elbv2.create_rule(
                    ListenerArn=self._settings.ecs_listener_arn,
                    Priority=priority,
                    Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": [pattern]}}],
                    Actions=forward,
                    Tags=[{"Key": JOB_TAG, "Value": job_id}],
                )
            except ClientError as error:
                # Another orchestrator took the slot between our read and our write.
                if _error_code(error) != "PriorityInUse" or attempt + 1 == _PRIORITY_ATTEMPTS:
                    raise
                log.info("rule priority %d was taken while launching job %s; retrying", priority, job_id)
                continue
            return str(created["Rules"][0]["RuleArn"])
        raise AssertionError("unreachable")  # pragma: no cover

    # -- Teardown ---------------------------------------------------------------

    def _discover(self, job_id: str, known: NodeResources) -> NodeResources:
        """Find the job's rule and target group by their names when the ref lacks them."""
        rule_arn = known.rule_arn
        if not rule_arn:
            pattern = job_path_pattern(job_id)
            rule_arn = next(
                (str(rule["RuleArn"]) for rule in self._listener_rules() if pattern in _path_patterns(rule)),
                "",
            )
        target_group_arn = (
            known.target_group_arn or self._target_group_arn_by_name(target_group_name(job_id)) or ""
        )
        return NodeResources(known.task_arn, target_group_arn, rule_arn)

    def _remove(self, resources: NodeResources, *, best_effort: bool) -> None:
        """Remove the route first, so devices stop reaching the node, then the node itself.

        Every step is attempted even when an earlier one fails; resources that are
        already gone count as removed.
        """
        steps = []
        if resources.rule_arn:
            steps.append(lambda: self._delete_rule(resources.rule_arn))
        if resources.target_group_arn:
            steps.append(lambda: self._delete_target_group(resources.target_group_arn))
        if resources.task_arn:
            steps.append(lambda: self._stop_task(resources.task_arn))
        errors: list[Exception] = []
        for step in steps:
            try:
                step()
            except Exception as error:
                log.warning("cleaning up an FL node failed: %s", error)
                errors.append(error)
        if errors and not best_effort:
            raise errors[0]

    def _delete_rule(self, rule_arn: str) -> None:
        try:
            self._elbv2.delete_rule(RuleArn=rule_arn)
        except ClientError as error:
            if _error_code(error) != "RuleNotFound":
                raise

    def _delete_target_group(self, target_group_arn: str) -> None:
        # Right after its rule is deleted the group can briefly still count as in use.
        for attempt in range(5):
            try:
                self._elbv2.delete_target_group(TargetGroupArn=target_group_arn)
            except ClientError as error:
                code = _error_code(error)
                if code == "TargetGroupNotFound":
                    return
                if code != "ResourceInUse" or attempt == 4:
                    raise
                time.sleep(min(self._poll_interval, 2.0))
            else:
                return

    def _stop_task(self, task_arn: str) -> None:
        try:
            self._ecs.stop_task(cluster=self._cluster, task=task_arn, reason=STOP_REASON)
        except ClientError as error:
            code = _error_code(error)
            message = str(error.response.get("Error", {}).get("Message", "")).lower()
            if code == "ClusterNotFoundException" or (
                code == "InvalidParameterException" and "not found" in message
            ):
                return
            raise


def _client_token(job_id: str, number: int) -> str:
    # ECS accepts tokens of up to 64 characters.
    token = f"{job_id}-{number}"
    return token if len(token) <= 64 else hashlib.sha256(token.encode()).hexdigest()


def _private_ip(task: dict[str, Any]) -> str | None:
    for attachment in task.get("attachments") or []:
        if attachment.get("type") != "ElasticNetworkInterface":
            continue
        for detail in attachment.get("details") or []:
            if detail.get("name") == "privateIPv4Address" and detail.get("value"):
                return str(detail["value"])
    return None


def _path_patterns(rule: dict[str, Any]) -> set[str]:
    patterns: set[str] = set()
    for condition in rule.get("Conditions") or []:
        if condition.get("Field") != "path-pattern":
            continue
        patterns.update(condition.get("Values") or [])
        patterns.update((condition.get("PathPatternConfig") or {}).get("Values") or [])
    return patterns

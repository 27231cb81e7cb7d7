"""Logical ids: a refactoring of the CDK code replaces nothing in a deployed stage."""

from __future__ import annotations

from typing import Any

from .helpers import Synth
from .logical_ids import FIXTURE, logical_ids, recorded

_HOW = (
    f"if that is intended, record it in {FIXTURE.relative_to(FIXTURE.parents[3])}"
    " (python -m tests.infra.logical_ids rewrites it; review the diff)"
)


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Each stack, resource or output of ``before`` that ``now`` lost, retyped, renamed or added."""
    found = [f"stack {name} is gone" for name in sorted(before.keys() - now.keys())]
    found += [f"stack {name} is new" for name in sorted(now.keys() - before.keys())]
    for stack in sorted(before.keys() & now.keys()):
        old, new = before[stack]["Resources"], now[stack]["Resources"]
        found += [
            f"{stack}: {old[i]} {i} is gone (a deploy would delete it)"
            for i in sorted(old.keys() - new.keys())
        ]
        found += [f"{stack}: {new[i]} {i} is new" for i in sorted(new.keys() - old.keys())]
        found += [
            f"{stack}: {i} was {old[i]}, is now {new[i]} (a deploy would replace it)"
            for i in sorted(old.keys() & new.keys())
            if old[i] != new[i]
        ]
        old, new = before[stack]["Outputs"], now[stack]["Outputs"]
        found += [f"{stack}: output {i} is gone" for i in sorted(old.keys() - new.keys())]
        found += [f"{stack}: output {i} is new" for i in sorted(new.keys() - old.keys())]
        found += [
            f"{stack}: output {i} was exported as {old[i]!r}, now as {new[i]!r}"
            for i in sorted(old.keys() & new.keys())
            if old[i] != new[i]
        ]
    return found


def test_every_stack_keeps_the_logical_ids_of_its_resources_and_exports(synth: Synth) -> None:
    # Given the logical ids recorded for this stage, and those of today's synth
    before = recorded()[synth.config.stage]
    now = logical_ids(synth)

    # Then no resource or export is gone, renamed, retyped or added without being recorded
    found = differences(before, now)
    assert not found, "\n".join([*found, _HOW])


def test_a_renamed_resource_is_reported_by_both_of_its_ids() -> None:
    # Given a recorded stack, and a synth where one resource got another id and one output another export
    before = {"S": {"Resources": {"QueueA1": "AWS::SQS::Queue"}, "Outputs": {"Out": "S:Out"}}}
    now = {"S": {"Resources": {"QueueB2": "AWS::SQS::Queue"}, "Outputs": {"Out": "S:Other"}}}

    # When they are compared
    found = differences(before, now)

    # Then the lost id, the new one and the changed export are each named
    assert found == [
        "S: AWS::SQS::Queue QueueA1 is gone (a deploy would delete it)",
        "S: AWS::SQS::Queue QueueB2 is new",
        "S: output Out was exported as 'S:Out', now as 'S:Other'",
    ]


def test_the_record_covers_both_stages() -> None:
    # Then the record holds every stage the app is deployed as, each with every stack
    stages = recorded()
    assert set(stages) == {"dev", "prod"}
    for stage, stacks in stages.items():
        assert len(stacks) == 8, stage
        assert all(stack["Resources"] for stack in stacks.values()), stage

"""Reading containers/Dockerfile without Docker: its stages, and what a target inherits from them."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Step:
    """One instruction: ``op`` upper-cased, ``args`` as written, continuation lines joined."""

    op: str
    args: str

    @property
    def json_args(self) -> list[str]:
        """The exec form's arguments, of ``CMD ["python", ...]`` and the like."""
        return json.loads(self.args)


@dataclass
class Stage:
    name: str
    parent: str  # the image or the stage it is built FROM
    steps: list[Step] = field(default_factory=list)


@dataclass
class Image:
    """What a target's image is configured with, as Docker derives it along its stages."""

    user: str = "root"
    env: dict[str, str] = field(default_factory=dict)
    exposed: set[int] = field(default_factory=set)
    healthcheck: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None


class Dockerfile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stages: dict[str, Stage] = {}
        text = re.sub(r"\\\n", " ", path.read_text())
        for line in (line.strip() for line in text.splitlines()):
            if not line or line.startswith("#"):
                continue
            op, _, args = line.partition(" ")
            op, args = op.upper(), args.strip()
            if op == "FROM":
                words = [word for word in args.split() if not word.startswith("--")]
                name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(self.stages))
                self.stages[name] = Stage(name, words[0])
            else:
                assert self.stages, f"{op} before the first FROM"
                list(self.stages.values())[-1].steps.append(Step(op, args))

    def chain(self, target: str) -> list[Stage]:
        """The stages ``target`` is built from, the first one (FROM an image) first."""
        stages = [self.stages[target]]
        while stages[0].parent in self.stages:
            stages.insert(0, self.stages[stages[0].parent])
        return stages

    def base_image(self, target: str) -> str:
        return self.chain(target)[0].parent

    def steps(self, target: str) -> list[Step]:
        return [step for stage in self.chain(target) for step in stage.steps]

    def image(self, target: str) -> Image:
        image = Image()
        for stage in self.chain(target):
            cmd_set_here = False
            for step in stage.steps:
                if step.op == "USER":
                    image.user = step.args.split(":")[0]
                elif step.op == "ENV":
                    pairs = [word.partition("=") for word in shlex.split(step.args)]
                    assert all(sep for _, sep, _ in pairs), f"ENV in the key=value form: {step.args}"
                    image.env.update({key: value for key, _, value in pairs})
                elif step.op == "EXPOSE":
                    image.exposed.update(int(port.split("/")[0]) for port in step.args.split())
                elif step.op == "HEALTHCHECK":
                    _, _, command = step.args.partition("CMD ")
                    image.healthcheck = json.loads(command) if command else None
                elif step.op == "ENTRYPOINT":
                    image.entrypoint = step.json_args
                    if not cmd_set_here:  # Docker drops a CMD inherited from an earlier stage
                        image.cmd = None
                elif step.op == "CMD":
                    image.cmd, cmd_set_here = step.json_args, True
        return image

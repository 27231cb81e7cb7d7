"""What a scientist asks for when they submit an evaluation: the API's request body.

Inputs are images scaled to [0, 1], so an L∞ budget is a fraction of the
pixel range and an L2 budget is a Euclidean distance in that same unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cohort.evaluation.attacks import ATTACKS, Norm

# The registered names as a Literal: validation refuses any other and lists these, and the OpenAPI
# document publishes them as the enum the website is typed from.
AttackName = Literal[*ATTACKS]
BUILTIN_DATASET = "digits"
MAX_EPSILONS = 12


def _attacks_description() -> str:
    """The ``attacks`` field's help in the API's documentation: one line per registered attack."""
    lines = []
    for attack in ATTACKS.values():
        kind = "" if attack.iterates else "; single step, so `steps` and `restarts` do not apply"
        lines.append(f"- `{attack.name}` ({attack.norm}{kind}): {attack.summary}")
    return (
        "The attacks to run, each at most once; only with `preset` `custom`, whose default is "
        f"{', '.join(CUSTOM_DEFAULT_ATTACKS)}:\n" + "\n".join(lines)
    )


# Each attack's label, norm and summary, for clients that present the choice (the website's form).
_ATTACK_DETAILS = {
    attack.name: {"label": attack.label, "norm": attack.norm, "summary": attack.summary}
    for attack in ATTACKS.values()
}


Preset = Literal["autoattack", "fast", "custom"]


@dataclass(frozen=True)
class PresetPlan:
    """What a preset fixes: the attacks in the order they run and the settings they run with.

    A cascaded preset attacks each sample with the next attack only while every earlier attack of
    its norm has failed on it, and keeps the worst case per sample, as AutoAttack does.
    """

    attacks: tuple[str, ...]
    steps: int
    restarts: int
    target_classes: int
    queries: int
    cascade: bool
    standard: bool  # the standard AutoAttack ensemble at its published settings
    summary: str


# AutoAttack's standard version (Croce & Hein 2020, and the reference code's ``version="standard"``):
# APGD-CE, APGD-T over the 9 runner-up classes, a targeted minimal-norm attack, then Square with 5,000
# queries, 100 iterations each and one restart, in this order, per norm.
PRESETS: dict[str, PresetPlan] = {
    "autoattack": PresetPlan(
        attacks=(
            "apgd_ce",
            "apgd_t",
            "fmn_linf",
            "square_linf",
            "apgd_ce_l2",
            "apgd_t_l2",
            "fmn_l2",
            "square_l2",
        ),
        steps=100,
        restarts=1,
        target_classes=9,
        queries=5000,
        cascade=True,
        standard=True,
        summary="the standard AutoAttack ensemble at its published settings: the number to quote",
    ),
    "fast": PresetPlan(
        attacks=("apgd_ce", "apgd_t", "square_linf", "apgd_ce_l2", "apgd_t_l2", "square_l2"),
        steps=20,
        restarts=1,
        target_classes=3,
        queries=500,
        cascade=True,
        standard=False,
        summary="a quick look with fewer steps, targets and queries: not the standard, may be optimistic",
    ),
    "custom": PresetPlan(
        attacks=("fgsm", "pgd_linf", "pgd_l2", "apgd_ce"),
        steps=20,
        restarts=1,
        target_classes=9,
        queries=5000,
        cascade=False,
        standard=False,
        summary="the attacks and settings you choose, each run on every sample: for comparisons",
    ),
}
CUSTOM_DEFAULT_ATTACKS = PRESETS["custom"].attacks
NORMS: tuple[Norm, ...] = ("linf", "l2")
# What a preset other than custom decides, so a request may not set it to anything else.
_FIXED_BY_PRESET = ("attacks", "steps", "restarts", "target_classes", "queries")


def _epsilon_grid(values: list[float]) -> list[float]:
    if values != sorted(set(values)):
        raise ValueError("epsilons must be sorted ascending without repeats")
    return values


class EvaluationSpec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "x-presets": {
                name: {
                    "attacks": list(plan.attacks),
                    "steps": plan.steps,
                    "restarts": plan.restarts,
                    "target_classes": plan.target_classes,
                    "queries": plan.queries,
                    "standard": plan.standard,
                    "summary": plan.summary,
                }
                for name, plan in PRESETS.items()
            }
        },
    )

    preset: Annotated[
        Preset,
        Field(
            description=(
                "`autoattack` (the default) runs the standard AutoAttack ensemble at its published "
                "settings; `fast` a cheaper cascade that the report marks as not the standard; `custom` "
                "the `attacks`, `steps`, `restarts`, `target_classes` and `queries` you set."
            )
        ),
    ] = "autoattack"
    norms: Annotated[
        list[Norm],
        Field(
            min_length=1,
            max_length=len(NORMS),
            description="The threat models a preset attacks in: L∞, L2 or both (the default).",
        ),
    ] = list(NORMS)
    attacks: Annotated[
        list[AttackName],
        Field(
            min_length=1,
            max_length=len(ATTACKS),
            description=_attacks_description(),
            json_schema_extra={"x-attacks": _ATTACK_DETAILS},
        ),
    ] = list(PRESETS["autoattack"].attacks)
    epsilons_linf: Annotated[
        list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=1, max_length=MAX_EPSILONS)
    ] = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
    epsilons_l2: Annotated[
        list[Annotated[float, Field(ge=0.0, le=10.0)]], Field(min_length=1, max_length=MAX_EPSILONS)
    ] = [0.0, 0.25, 0.5, 1.0, 2.0]
    # The budget the headline is read at, on the headline norm (L∞ when an L∞ attack runs). None means
    # the declared standard budget of the dataset's input domain (``budgets.py``); it joins the grid.
    headline_epsilon: Annotated[float, Field(gt=0.0, le=10.0)] | None = None
    samples: Annotated[int, Field(ge=1, le=10_000)] = 500
    steps: Annotated[int, Field(ge=1, le=200)] = PRESETS["autoattack"].steps
    # Relative step of the fixed-step attacks (FGSM takes eps, PGD alpha = step_size * eps). None means
    # 2.5 / steps, which lets a PGD walk cross the ball 2.5 times (Madry et al. 2018). APGD, FMN and
    # Square choose their own steps.
    step_size: Annotated[float, Field(gt=0.0, le=10.0)] | None = None
    random_start: bool = True
    restarts: Annotated[int, Field(ge=1, le=5)] = PRESETS["autoattack"].restarts
    target_classes: Annotated[int, Field(ge=1, le=20)] = PRESETS["autoattack"].target_classes
    queries: Annotated[int, Field(ge=1, le=10_000)] = PRESETS["autoattack"].queries
    minimal_perturbation: bool = True
    # Rows per forward pass, a row being one sample at one epsilon: what bounds memory.
    batch_size: Annotated[int, Field(ge=1, le=2048)] = 250
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    # "digits" is the built-in test split; anything else is the storage key of
    # an uploaded set, which the service checks before it reaches the engine.
    dataset: Annotated[str, Field(min_length=1, max_length=512)] = BUILTIN_DATASET

    _sorted_linf = field_validator("epsilons_linf")(_epsilon_grid)
    _sorted_l2 = field_validator("epsilons_l2")(_epsilon_grid)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill in what the preset fixes; a preset other than custom refuses a request to change it."""
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "autoattack")
        plan = PRESETS.get(preset) if isinstance(preset, str) else None
        if plan is None:
            return data  # the field's own validation names the presets
        norms = data.get("norms", list(NORMS))
        fixed = {
            "attacks": [a for a in plan.attacks if not isinstance(norms, list) or ATTACKS[a].norm in norms],
            "steps": plan.steps,
            "restarts": plan.restarts,
            "target_classes": plan.target_classes,
            "queries": plan.queries,
        }
        if preset == "custom":
            data = {**fixed, **data}
            attacks = data["attacks"]
            if isinstance(attacks, list) and all(a in ATTACKS for a in attacks):
                used = [norm for norm in NORMS if any(ATTACKS[a].norm == norm for a in attacks)]
                if data.get("norms", used) != used:
                    raise ValueError("norms: with the custom preset, the attacks you choose decide the norms")
                data["norms"] = used
            return data
        changed = [name for name in _FIXED_BY_PRESET if name in data and data[name] != fixed[name]]
        if changed:
            raise ValueError(
                f"the {preset} preset fixes {', '.join(changed)} so that its number means the same for "
                "every model; leave them out, or set preset to custom to choose them"
            )
        return {**data, **fixed}

    @field_validator("norms")
    @classmethod
    def _unique_norms(cls, norms: list[Norm]) -> list[Norm]:
        if len(set(norms)) != len(norms):
            raise ValueError("each norm may be listed once")
        return norms

    @field_validator("attacks")
    @classmethod
    def _unique_attacks(cls, attacks: list[AttackName]) -> list[AttackName]:
        if len(set(attacks)) != len(attacks):
            raise ValueError("each attack may be listed once")
        return attacks

    @model_validator(mode="after")
    def _headline_on_the_grid(self) -> EvaluationSpec:
        """The headline budget is always one of the grid's epsilons, so the curve shows it."""
        if self.headline_epsilon is None:
            return self
        norm = self.headline_norm
        grid = self.epsilons(norm)
        if self.headline_epsilon not in grid:
            if len(grid) >= MAX_EPSILONS:
                raise ValueError(
                    f"headline_epsilon {self.headline_epsilon:g} would be a {MAX_EPSILONS + 1}th epsilon "
                    f"of epsilons_{norm}: add it in place of another"
                )
            if norm == "linf" and self.headline_epsilon > 1.0:
                raise ValueError("headline_epsilon: an L∞ budget is at most 1, the whole pixel range")
            object.__setattr__(self, f"epsilons_{norm}", sorted([*grid, self.headline_epsilon]))
        return self

    @property
    def plan(self) -> PresetPlan:
        return PRESETS[self.preset]

    @property
    def cascade(self) -> bool:
        """Whether each attack runs only on what the attacks before it (of its norm) failed to break."""
        return self.plan.cascade

    @property
    def alpha(self) -> float:
        """The relative step size PGD and the minimal-perturbation search use."""
        return self.step_size if self.step_size is not None else 2.5 / self.steps

    @property
    def headline_norm(self) -> Norm:
        """The norm of the headline: L∞ when an L∞ attack runs, L2 otherwise."""
        return "linf" if self.uses("linf") else "l2"

    def uses(self, norm: Norm) -> bool:
        return any(ATTACKS[attack].norm == norm for attack in self.attacks)

    def attacks_of(self, norm: Norm) -> list[AttackName]:
        return [attack for attack in self.attacks if ATTACKS[attack].norm == norm]

    def epsilons(self, norm: Norm) -> list[float]:
        return self.epsilons_linf if norm == "linf" else self.epsilons_l2

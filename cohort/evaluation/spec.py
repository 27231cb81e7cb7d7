"""What a scientist asks for when they submit an evaluation: the API's request body.

Inputs are images scaled to [0, 1], so an L∞ budget is a fraction of the
pixel range and an L2 budget is a Euclidean distance in that same unit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    return "The attacks to run, each at most once; all of them by default:\n" + "\n".join(lines)


# Each attack's label, norm and summary, for clients that present the choice (the website's form).
_ATTACK_DETAILS = {
    attack.name: {"label": attack.label, "norm": attack.norm, "summary": attack.summary}
    for attack in ATTACKS.values()
}


def _epsilon_grid(values: list[float]) -> list[float]:
    if values != sorted(set(values)):
        raise ValueError("epsilons must be sorted ascending without repeats")
    return values


class EvaluationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    attacks: Annotated[
        list[AttackName],
        Field(
            min_length=1,
            max_length=len(ATTACKS),
            description=_attacks_description(),
            json_schema_extra={"x-attacks": _ATTACK_DETAILS},
        ),
    ] = list(ATTACKS)
    epsilons_linf: Annotated[
        list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=1, max_length=MAX_EPSILONS)
    ] = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
    epsilons_l2: Annotated[
        list[Annotated[float, Field(ge=0.0, le=10.0)]], Field(min_length=1, max_length=MAX_EPSILONS)
    ] = [0.0, 0.25, 0.5, 1.0, 2.0]
    samples: Annotated[int, Field(ge=1, le=10_000)] = 500
    steps: Annotated[int, Field(ge=1, le=200)] = 20
    # Relative step: alpha = step_size * eps. None means 2.5 / steps, which lets
    # a PGD walk cross the ball 2.5 times (Madry et al. 2018).
    step_size: Annotated[float, Field(gt=0.0, le=10.0)] | None = None
    random_start: bool = True
    restarts: Annotated[int, Field(ge=1, le=5)] = 1
    minimal_perturbation: bool = True
    # Rows per forward pass, a row being one sample at one epsilon: what bounds memory.
    batch_size: Annotated[int, Field(ge=1, le=2048)] = 250
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    # "digits" is the built-in test split; anything else is the storage key of
    # an uploaded set, which the service checks before it reaches the engine.
    dataset: Annotated[str, Field(min_length=1, max_length=512)] = BUILTIN_DATASET

    _sorted_linf = field_validator("epsilons_linf")(_epsilon_grid)
    _sorted_l2 = field_validator("epsilons_l2")(_epsilon_grid)

    @field_validator("attacks")
    @classmethod
    def _unique_attacks(cls, attacks: list[AttackName]) -> list[AttackName]:
        if len(set(attacks)) != len(attacks):
            raise ValueError("each attack may be listed once")
        return attacks

    @property
    def alpha(self) -> float:
        """The relative step size PGD and the minimal-perturbation search use."""
        return self.step_size if self.step_size is not None else 2.5 / self.steps

    def uses(self, norm: Norm) -> bool:
        return any(ATTACKS[attack].norm == norm for attack in self.attacks)

    def attacks_of(self, norm: Norm) -> list[AttackName]:
        return [attack for attack in self.attacks if ATTACKS[attack].norm == norm]

    def epsilons(self, norm: Norm) -> list[float]:
        return self.epsilons_linf if norm == "linf" else self.epsilons_l2

    def headline(self) -> tuple[Norm, float]:
        """Where the headline number is read: the worst case at the middle non-zero L∞ epsilon.

        The middle (the lower of the two middles for an even count) is a budget
        the grid's author considered typical, neither trivial nor absurd. An
        evaluation without an L∞ attack reads the L2 grid the same way; a grid
        without a non-zero epsilon gives epsilon 0, the clean accuracy.
        """
        norm: Norm = "linf" if self.uses("linf") else "l2"
        nonzero = [eps for eps in self.epsilons(norm) if eps > 0]
        return norm, (nonzero[(len(nonzero) - 1) // 2] if nonzero else 0.0)

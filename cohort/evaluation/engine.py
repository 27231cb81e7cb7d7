"""Running an evaluation: a clean pass, each attack over its epsilon grid, the
minimal-perturbation search, then the report's numbers.

Work is batched as (sample, epsilon) rows: ``spec.batch_size`` rows per
forward pass, so a chunk of ``batch_size // len(grid)`` samples is attacked at
every non-zero epsilon of the grid at once. Only samples the model gets right
are attacked: a misclassified sample is not robust at any epsilon, and at
epsilon 0 every attack is the identity.

The headline is the worst case over the L∞ attacks at the middle non-zero
epsilon of ``epsilons_linf`` (see ``EvaluationSpec.headline``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from cohort.domain.errors import InvalidInput
from cohort.evaluation import metrics, work
from cohort.evaluation.attacks import ATTACKS, SEARCH_ATTACK, Attack, AttackSettings, Norm
from cohort.evaluation.data import EvaluationData
from cohort.evaluation.results import EvaluationResult, Flag, GalleryItem, Headline, MinimalPerturbation
from cohort.evaluation.spec import AttackName, EvaluationSpec

GALLERY_SIZE = 8
Progress = Callable[[float], None]


@dataclass
class Gallery:
    """Inputs aligned with ``EvaluationResult.gallery``: [K, *input_shape] in [0, 1], K <= 8."""

    clean: torch.Tensor
    adversarial: torch.Tensor


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# The process-wide settings that decide how float32 kernels compute: (owner, attribute) pairs.
_NUMERICS = (
    (torch.backends.cudnn.conv, "fp32_precision"),
    (torch.backends.cuda.matmul, "fp32_precision"),
    (torch.backends.cudnn, "deterministic"),
    (torch.backends.cudnn, "benchmark"),
)
_EXACT = ("ieee", "ieee", True, False)


def numerics() -> tuple[object, ...]:
    """The kernel settings in force, in the order of ``_NUMERICS``."""
    return tuple(getattr(owner, name) for owner, name in _NUMERICS)


def set_numerics(values: tuple[object, ...]) -> None:
    for (owner, name), value in zip(_NUMERICS, values, strict=True):
        setattr(owner, name, value)


@contextmanager
def exact_numerics() -> Iterator[None]:
    """Full float32 and deterministic kernels while an evaluation runs, then the settings as they were.

    On a GPU, cuDNN would otherwise run convolutions in TF32 (10 mantissa bits), which moves attack
    success at the margin away from the CPU's, and may pick kernels whose backward pass differs run to
    run, so the same seed would not give the same report. On the CPU these settings change nothing.
    """
    saved = numerics()
    set_numerics(_EXACT)
    try:
        yield
    finally:
        set_numerics(saved)


@contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode with frozen parameters, so backward computes the input gradient and nothing else."""
    training, flags = model.training, [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield model
    finally:
        model.train(training)
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


@dataclass
class _Outcome:
    robust: torch.Tensor  # bool [N, E]: still classified correctly after the attack
    confidence: torch.Tensor  # float [N, E]: max softmax probability on the attacked input


@dataclass
class _Candidate:
    index: int
    attack: AttackName
    adversarial: torch.Tensor
    prediction: int


def run_evaluation(
    model: nn.Module,
    data: EvaluationData,
    spec: EvaluationSpec,
    *,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> tuple[EvaluationResult, Gallery]:
    """Evaluate the first ``spec.samples`` samples of ``data``. The model is moved to ``device``."""
    started = time.perf_counter()
    device = device or pick_device()
    try:
        with exact_numerics(), attack_mode(model.to(device)):
            evaluation = _Evaluation(model, data, spec, device, progress)
            return evaluation.run(started)
    except torch.OutOfMemoryError:
        # The same model, data and batch size run out the same way every time: no retry would help.
        raise InvalidInput(
            f"the evaluation ran out of {device.type.upper()} memory at batch_size {spec.batch_size} "
            "(sample and epsilon pairs per pass): submit it again with a smaller batch_size"
        ) from None


class _Evaluation:
    def __init__(
        self,
        model: nn.Module,
        data: EvaluationData,
        spec: EvaluationSpec,
        device: torch.device,
        progress: Progress | None,
    ) -> None:
        count = min(len(data), spec.samples)
        self.model, self.spec, self.device, self.callback = model, spec, device, progress
        self.dataset_name = data.name
        self.inputs, self.labels = data.inputs[:count], data.labels[:count]
        self.settings = AttackSettings(
            steps=spec.steps,
            relative_step=spec.alpha,
            random_start=spec.random_start,
            generator=torch.Generator(device=device).manual_seed(spec.seed),
        )
        self.headline_norm, self.headline_epsilon = spec.headline()
        self.candidates: list[_Candidate] = []
        self.done = self.total = 0.0

    # -- running -----------------------------------------------------------------------------

    def run(self, started: float) -> tuple[EvaluationResult, Gallery]:
        self.clean_correct, clean_confidence = self._clean_pass()
        self.targets = torch.nonzero(self.clean_correct).flatten()
        self.total = work.gradient_passes(self.spec, len(self.targets))
        outcomes = {name: self._attack(ATTACKS[name], clean_confidence) for name in self.spec.attacks}
        worst = {
            norm: metrics.worst_case([outcomes[a].robust for a in self.spec.attacks_of(norm)])
            for norm in ("linf", "l2")
            if self.spec.uses(norm)
        }
        minimal = self._minimal_perturbation(worst.get("linf"))
        self._report(1.0)
        return self._result(outcomes, worst, minimal, time.perf_counter() - started), self._gallery()

    def _report(self, fraction: float) -> None:
        if self.callback is not None:
            self.callback(min(1.0, fraction))

    def _advance(self, cost: float) -> None:
        self.done += cost
        self._report(self.done / self.total if self.total else 1.0)

    @torch.no_grad()
    def _clean_pass(self) -> tuple[torch.Tensor, torch.Tensor]:
        correct, confidence = [], []
        for x, y in zip(
            self.inputs.split(self.spec.batch_size), self.labels.split(self.spec.batch_size), strict=True
        ):
            logits = self.model(x.to(self.device))
            self.num_classes = logits.shape[1]
            correct.append((logits.argmax(dim=1) == y.to(self.device)).cpu())
            confidence.append(functional.softmax(logits, dim=1).amax(dim=1).cpu())
        return torch.cat(correct), torch.cat(confidence)

    def _strongest(
        self, attack: Attack, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, runs: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row, the worst adversarial over ``runs`` restarts and its logits.

        Worst means misclassified first, then highest loss.
        """
        best: tuple[torch.Tensor, ...] | None = None
        for _ in range(runs):
            adversarial = attack.run(self.model, x, y, eps, self.settings)
            with torch.no_grad():
                logits = self.model(adversarial)
            wrong = logits.argmax(dim=1) != y
            loss = functional.cross_entropy(logits, y, reduction="none")
            if best is None:
                best = adversarial, logits, wrong, loss
                continue
            best_adversarial, best_logits, best_wrong, best_loss = best
            better = (wrong & ~best_wrong) | ((wrong == best_wrong) & (loss > best_loss))
            best_adversarial[better], best_logits[better] = adversarial[better], logits[better]
            best = best_adversarial, best_logits, best_wrong | wrong, torch.where(better, loss, best_loss)
        assert best is not None  # runs >= 1
        return best[0], best[1]

    def _attack(self, attack: Attack, clean_confidence: torch.Tensor) -> _Outcome:
        grid = self.spec.epsilons(attack.norm)
        columns = work.attacked_columns(grid)
        # Epsilon 0, and every misclassified sample, keep their clean outcome.
        robust = self.clean_correct[:, None].repeat(1, len(grid))
        confidence = clean_confidence[:, None].repeat(1, len(grid))
        if not columns:
            return _Outcome(robust, confidence)
        epsilons = torch.tensor([grid[j] for j in columns], device=self.device)
        column_index = torch.tensor(columns, device="cpu")  # indexes the CPU-side tallies
        headline = self._headline_column(attack, grid, columns)
        for chunk in self.targets.split(max(1, self.spec.batch_size // len(columns))):
            x, y = self.inputs[chunk].to(self.device), self.labels[chunk].to(self.device)
            # Epsilon-major rows: row j * len(chunk) + i is sample i at the j-th non-zero epsilon.
            rows, row_labels = x.repeat(len(columns), *([1] * (x.dim() - 1))), y.repeat(len(columns))
            row_eps = epsilons.repeat_interleave(len(chunk))
            adversarial, logits = self._strongest(
                attack, rows, row_labels, row_eps, work.runs(attack, self.spec)
            )
            predictions = logits.argmax(dim=1)
            right = (predictions == row_labels).view(len(columns), -1).T.cpu()
            robust[chunk[:, None], column_index] = right
            confidence[chunk[:, None], column_index] = (
                functional.softmax(logits, dim=1).amax(dim=1).view(len(columns), -1).T.cpu()
            )
            if headline is not None:
                block = slice(headline * len(chunk), (headline + 1) * len(chunk))
                self._collect(attack.name, chunk, right[:, headline], adversarial[block], predictions[block])
            self._advance(len(chunk) * len(columns) * work.passes_per_row(attack, self.spec))
        return _Outcome(robust, confidence)

    def _headline_column(self, attack: Attack, grid: list[float], columns: list[int]) -> int | None:
        """Where the headline epsilon sits among this attack's attacked columns, if it is one of them."""
        if attack.norm != self.headline_norm or self.headline_epsilon not in grid:
            return None
        position = grid.index(self.headline_epsilon)
        return columns.index(position) if position in columns else None

    def _collect(
        self,
        attack: AttackName,
        chunk: torch.Tensor,
        right: torch.Tensor,
        adversarial: torch.Tensor,
        predictions: torch.Tensor,
    ) -> None:
        """Keep up to GALLERY_SIZE broken samples per label; ``_gallery`` then picks across labels."""
        kept = {c.index for c in self.candidates}
        for i in torch.nonzero(~right).flatten().tolist():
            index, label = int(chunk[i]), int(self.labels[chunk[i]])
            per_label = sum(int(self.labels[c.index]) == label for c in self.candidates)
            if index not in kept and per_label < GALLERY_SIZE:
                self.candidates.append(_Candidate(index, attack, adversarial[i].cpu(), int(predictions[i])))
                kept.add(index)

    def _minimal_perturbation(self, worst_linf: torch.Tensor | None) -> MinimalPerturbation | None:
        """Per attacked sample, the smallest L∞ epsilon at which ``SEARCH_ATTACK`` breaks it, by bisection.

        The bracket starts from the grid: the first epsilon at which some L∞
        attack broke the sample, and the grid point below it. Each round runs
        the search attack at the bracket's middle and keeps the half where the
        boundary lies. The estimate is the bracket's top, an epsilon at which
        an attack did succeed: an upper bound on the true minimum, within
        ``precision`` of where the search attack starts to succeed. Samples no
        attack broke within the grid's largest epsilon are reported as unbroken.
        """
        if not work.searches(self.spec) or worst_linf is None:
            return None
        # The bracket is kept on the CPU; only the attacks run on the evaluation's device.
        grid = torch.tensor(self.spec.epsilons_linf, dtype=torch.float64, device="cpu")
        broken = ~worst_linf[self.targets]
        found = broken.any(dim=1)
        first = broken.to(torch.int8).argmax(dim=1)
        high = grid[first]
        low = torch.where(first > 0, grid[(first - 1).clamp(min=0)], torch.zeros_like(high))
        searched = torch.nonzero(found).flatten()
        for _ in range(work.SEARCH_ITERATIONS):
            for part in searched.split(self.spec.batch_size):
                middle = (low[part] + high[part]) / 2
                index = self.targets[part]
                x, y = self.inputs[index].to(self.device), self.labels[index].to(self.device)
                _, logits = self._strongest(SEARCH_ATTACK, x, y, middle.to(self.device, torch.float32), 1)
                wrong = (logits.argmax(dim=1) != y).cpu()
                high[part] = torch.where(wrong, middle, high[part])
                low[part] = torch.where(wrong, low[part], middle)
                self._advance(len(part) * work.search_passes_per_round(self.spec))
        estimates = torch.where(found, high, torch.full_like(high, float("inf")))
        precision = float((high - low)[found].max()) if bool(found.any()) else 0.0
        return metrics.minimal_perturbation_summary(estimates, precision, max(self.spec.epsilons_linf))

    # -- reporting ---------------------------------------------------------------------------

    def _result(
        self,
        outcomes: dict[AttackName, _Outcome],
        worst: dict[Norm, torch.Tensor],
        minimal: MinimalPerturbation | None,
        seconds: float,
    ) -> EvaluationResult:
        spec = self.spec
        headline_robust = self._headline_robust(worst)
        flags = metrics.gradient_flags(self.settings.stats) + self._single_step_flags(outcomes)
        flag = metrics.monotonicity_flag(
            {a: (spec.epsilons(ATTACKS[a].norm), outcome.robust) for a, outcome in outcomes.items()}
        )
        flags += [flag] if flag else []
        return EvaluationResult(
            dataset=self.dataset_name,
            samples=len(self.labels),
            num_classes=self.num_classes,
            input_shape=list(self.inputs.shape[1:]),
            device=str(self.device),
            seconds=seconds,
            clean=metrics.clean_score(self.clean_correct),
            curves=[
                point
                for attack, outcome in outcomes.items()
                for point in metrics.curve(
                    attack, spec.epsilons(ATTACKS[attack].norm), outcome.robust, outcome.confidence
                )
            ],
            worst_case=[
                point
                for norm, robust in worst.items()
                for point in metrics.worst_case_points(norm, spec.epsilons(norm), robust)
            ],
            per_class=metrics.per_class(self.labels, self.clean_correct, headline_robust),
            minimal_perturbation=minimal,
            flags=flags,
            headline=Headline(
                norm=self.headline_norm,
                epsilon=self.headline_epsilon,
                robust_accuracy=float(headline_robust.double().mean()),
            ),
            gallery=[
                GalleryItem(
                    index=c.index,
                    label=int(self.labels[c.index]),
                    clean_prediction=int(
                        self.labels[c.index]
                    ),  # only correctly classified samples are attacked
                    adversarial_prediction=c.prediction,
                    attack=c.attack,
                    epsilon=self.headline_epsilon,
                )
                for c in self._chosen()
            ],
        )

    def _single_step_flags(self, outcomes: dict[AttackName, _Outcome]) -> list[Flag]:
        """A flag for each single-step attack that clearly beat the iterative attacks of its norm."""
        flags = []
        for name, outcome in outcomes.items():
            single_step = ATTACKS[name]
            if single_step.iterates:
                continue
            iterative = {
                other: outcomes[other].robust
                for other in outcomes
                if ATTACKS[other].iterates and ATTACKS[other].norm == single_step.norm
            }
            flag = metrics.single_step_flag(
                single_step.label, self.spec.epsilons(single_step.norm), outcome.robust, iterative
            )
            flags += [flag] if flag else []
        return flags

    def _headline_robust(self, worst: dict[Norm, torch.Tensor]) -> torch.Tensor:
        grid = self.spec.epsilons(self.headline_norm)
        if self.headline_epsilon not in grid:  # a grid without a non-zero epsilon: clean accuracy
            return self.clean_correct
        return worst[self.headline_norm][:, grid.index(self.headline_epsilon)]

    def _chosen(self) -> list[_Candidate]:
        """Up to GALLERY_SIZE candidates, taking labels in turn so the gallery shows several classes."""
        by_label: dict[int, list[_Candidate]] = {}
        for candidate in sorted(self.candidates, key=lambda c: c.index):
            by_label.setdefault(int(self.labels[candidate.index]), []).append(candidate)
        chosen: list[_Candidate] = []
        for rank in range(GALLERY_SIZE):
            chosen += [group[rank] for _, group in sorted(by_label.items()) if rank < len(group)]
        return sorted(chosen[:GALLERY_SIZE], key=lambda c: c.index)

    def _gallery(self) -> Gallery:
        chosen = self._chosen()
        if not chosen:
            empty = self.inputs[:0].clone()
            return Gallery(empty, empty.clone())
        return Gallery(
            torch.stack([self.inputs[c.index] for c in chosen]), torch.stack([c.adversarial for c in chosen])
        )

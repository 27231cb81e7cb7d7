"""Running an evaluation: a clean pass, each attack over its epsilon grid, the masking checks, the
minimal-perturbation search, then the report's numbers.

Work is batched as (sample, epsilon) rows, ``spec.batch_size`` rows per forward pass. Only rows
that can still be broken are attacked: a misclassified sample is not robust at any epsilon, at
epsilon 0 every attack is the identity, and in a cascaded preset (AutoAttack's way) an attack runs
only on the rows every earlier attack of its norm failed on, so each attack's curve is the robust
accuracy against it and all before it, and the last one is the worst case.

The headline is the worst case at the declared budget of the input domain (``budgets.py``), or the
spec's own ``headline_epsilon``; it is marked unreliable when any masking check fails.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy
import torch
from torch import nn
from torch.nn import functional

from cohort.domain.errors import InvalidInput
from cohort.evaluation import budgets, checks, metrics, work
from cohort.evaluation.attacks import ATTACKS, SEARCH_ATTACK, Attack, AttackSettings, Norm
from cohort.evaluation.data import EvaluationData
from cohort.evaluation.results import (
    AttackRun,
    EvaluationResult,
    GalleryItem,
    Headline,
    Manifest,
    MinimalPerturbation,
)
from cohort.evaluation.spec import AttackName, EvaluationSpec

GALLERY_SIZE = 8
Progress = Callable[[float], None]


@dataclass
class Artifacts:
    """What the report draws besides the numbers.

    ``gallery_clean`` and ``gallery_adversarial`` are aligned with ``EvaluationResult.gallery``
    ([K, *input_shape] in [0, 1], K <= 8); ``per_sample`` holds one row per evaluated sample, the
    rows of ``samples.csv``.
    """

    gallery_clean: torch.Tensor
    gallery_adversarial: torch.Tensor
    per_sample: list[dict[str, object]]


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
    robust: (
        torch.Tensor
    )  # bool [N, E]: still classified correctly after the attack (and, cascaded, those before)
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
    model_sha256: str | None = None,
) -> tuple[EvaluationResult, Artifacts]:
    """Evaluate the first ``spec.samples`` samples of ``data``. The model is moved to ``device``.

    ``model_sha256``, the digest of the weights file, goes into the report's manifest.
    """
    started = time.perf_counter()
    device = device or pick_device()
    spec, budget_source = budgets.resolve(spec, data.inputs.shape[1:])
    try:
        with exact_numerics(), attack_mode(model.to(device)):
            evaluation = _Evaluation(model, data, spec, device, progress)
            result, artifacts = evaluation.run()
    except torch.OutOfMemoryError:
        # The same model, data and batch size run out the same way every time: no retry would help.
        raise InvalidInput(
            f"the evaluation ran out of {device.type.upper()} memory at batch_size {spec.batch_size} "
            "(sample and epsilon pairs per pass): submit it again with a smaller batch_size"
        ) from None
    result.seconds = time.perf_counter() - started
    result.headline.budget_source = budget_source
    result.manifest.model_sha256 = model_sha256
    return result, artifacts


def covering_budget(norm: Norm, input_shape: torch.Size) -> float:
    """A budget that reaches every input in [0, 1]: the whole range in L∞, the cube's diagonal in L2."""
    return 1.0 if norm == "linf" else math.sqrt(math.prod(input_shape))


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
            target_classes=spec.target_classes,
            queries=spec.queries,
        )
        self.headline_norm: Norm = spec.headline_norm
        assert spec.headline_epsilon is not None  # run_evaluation resolves it
        self.headline_epsilon = spec.headline_epsilon
        self.candidates: list[_Candidate] = []
        self.done = self.total = 0.0

    # -- running -----------------------------------------------------------------------------

    def run(self) -> tuple[EvaluationResult, Artifacts]:
        self._clean_pass()
        self.targets = torch.nonzero(self.clean_correct).flatten()
        self.total = work.gradient_passes(self.spec, len(self.targets))
        outcomes: dict[AttackName, _Outcome] = {}
        worst: dict[Norm, torch.Tensor] = {}
        for norm in ("linf", "l2"):
            names = self.spec.attacks_of(norm)
            if not names:
                continue
            columns = len(self.spec.epsilons(norm))
            so_far = _Outcome(
                self.clean_correct[:, None].repeat(1, columns),
                self.clean_confidence[:, None].repeat(1, columns),
            )
            for name in names:
                outcomes[name] = self._attack(ATTACKS[name], so_far)
                if self.spec.cascade:
                    so_far = outcomes[name]
            worst[norm] = metrics.worst_case([outcomes[name].robust for name in names])
        coverage = {norm: self._coverage(norm) for norm in worst}
        minimal, estimates = self._minimal_perturbation(worst.get("linf"))
        self._report(1.0)
        result = self._result(outcomes, worst, minimal, coverage)
        return result, self._artifacts(worst, estimates)

    def _report(self, fraction: float) -> None:
        if self.callback is not None:
            self.callback(min(1.0, fraction))

    def _advance(self, cost: float) -> None:
        self.done += cost
        self._report(self.done / self.total if self.total else 1.0)

    def _clean_pass(self) -> None:
        """Predictions, confidence, and how saturated the loss is at each correctly classified input."""
        predictions, confidence, losses, gradient_norms = [], [], [], []
        for start in range(0, len(self.labels), self.spec.batch_size):
            batch = slice(start, start + self.spec.batch_size)
            x, y = self.inputs[batch].to(self.device), self.labels[batch].to(self.device)
            with torch.no_grad():
                logits = self.model(x)
            self.num_classes = logits.shape[1]
            predictions.append(logits.argmax(dim=1).cpu())
            confidence.append(functional.softmax(logits, dim=1).amax(dim=1).cpu())
            loss, norm = checks.saturation(self.model, x, y)
            losses.append(loss.cpu())
            gradient_norms.append(norm.cpu())
        self.clean_predictions = torch.cat(predictions)
        self.clean_correct = self.clean_predictions == self.labels
        self.clean_confidence = torch.cat(confidence)
        self.clean_losses, self.clean_gradient_norms = torch.cat(losses), torch.cat(gradient_norms)

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

    def _attack(self, attack: Attack, before: _Outcome) -> _Outcome:
        """Attack every (sample, epsilon) row still robust ``before`` at a non-zero epsilon.

        Rows not attacked keep their outcome and confidence from ``before``: a misclassified sample,
        epsilon 0, or in a cascade a row an earlier attack already broke, with that attack's confidence.
        """
        grid = self.spec.epsilons(attack.norm)
        attackable = before.robust
        robust, confidence = attackable.clone(), before.confidence.clone()
        grid_tensor = torch.tensor(grid, device="cpu")
        rows = torch.nonzero(attackable & (grid_tensor > 0)[None, :])  # [P, 2]: (sample, column)
        headline_column = grid.index(self.headline_epsilon) if attack.norm == self.headline_norm else None
        per_row = work.passes_per_row(attack, self.spec)
        for part in rows.split(self.spec.batch_size):
            samples, columns = part[:, 0], part[:, 1]
            x, y = self.inputs[samples].to(self.device), self.labels[samples].to(self.device)
            eps = grid_tensor[columns].to(self.device)
            adversarial, logits = self._strongest(attack, x, y, eps, work.runs(attack, self.spec))
            predictions = logits.argmax(dim=1)
            right = (predictions == y).cpu()
            robust[samples, columns] = right
            confidence[samples, columns] = functional.softmax(logits, dim=1).amax(dim=1).cpu()
            if headline_column is not None:
                at_headline = (columns == headline_column) & ~right
                self._collect(
                    attack.name,
                    samples[at_headline],
                    adversarial[at_headline.to(self.device)],
                    predictions[at_headline.to(self.device)],
                )
            self._advance(len(part) * per_row)
        return _Outcome(robust, confidence)

    def _collect(
        self, attack: AttackName, samples: torch.Tensor, adversarial: torch.Tensor, predictions: torch.Tensor
    ) -> None:
        """Keep up to GALLERY_SIZE broken samples per label; ``_chosen`` then picks across labels."""
        kept = {c.index for c in self.candidates}
        for position, index in enumerate(samples.tolist()):
            label = int(self.labels[index])
            per_label = sum(int(self.labels[c.index]) == label for c in self.candidates)
            if index not in kept and per_label < GALLERY_SIZE:
                self.candidates.append(
                    _Candidate(index, attack, adversarial[position].cpu(), int(predictions[position]))
                )
                kept.add(index)

    def _coverage(self, norm: Norm) -> checks.Coverage | None:
        """What the norm's first gradient attack leaves robust at a budget that reaches every input.

        Any input, an image of another class included, lies within such a budget, so a sound attack
        breaks every sample; what survives was shielded by the model's gradients, not by robustness.
        """
        attack = work.coverage_attack(self.spec, norm)
        if attack is None or not len(self.targets):
            return None
        chosen = self.targets[: work.COVERAGE_SAMPLES]
        x, y = self.inputs[chosen].to(self.device), self.labels[chosen].to(self.device)
        epsilon = covering_budget(norm, self.inputs.shape[1:])
        eps = torch.full((len(chosen),), epsilon, device=self.device)
        _, logits = self._strongest(attack, x, y, eps, 1)
        survived = int((logits.argmax(dim=1) == y).sum())
        self._advance(len(chosen) * work.passes_per_run(attack, self.spec))
        return checks.Coverage(norm=norm, epsilon=epsilon, robust=survived, samples=len(chosen))

    def _minimal_perturbation(
        self, worst_linf: torch.Tensor | None
    ) -> tuple[MinimalPerturbation | None, torch.Tensor | None]:
        """Per attacked sample, the smallest L∞ epsilon at which ``SEARCH_ATTACK`` breaks it, by bisection.

        The bracket starts from the grid: the first epsilon at which some L∞
        attack broke the sample, and the grid point below it. Each round runs
        the search attack at the bracket's middle and keeps the half where the
        boundary lies. The estimate is the bracket's top, an epsilon at which
        an attack did succeed: an upper bound on the true minimum, within
        ``precision`` of where the search attack starts to succeed. Samples no
        attack broke within the grid's largest epsilon are reported as unbroken
        (``inf``). Returns the summary and the estimates, one per target.
        """
        if not work.searches(self.spec) or worst_linf is None:
            return None, None
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
        summary = metrics.minimal_perturbation_summary(estimates, precision, max(self.spec.epsilons_linf))
        return summary, estimates

    # -- reporting ---------------------------------------------------------------------------

    def _result(
        self,
        outcomes: dict[AttackName, _Outcome],
        worst: dict[Norm, torch.Tensor],
        minimal: MinimalPerturbation | None,
        coverage: dict[Norm, checks.Coverage | None],
    ) -> EvaluationResult:
        spec = self.spec
        headline_robust = worst[self.headline_norm][
            :, spec.epsilons(self.headline_norm).index(self.headline_epsilon)
        ]
        found = checks.run_checks(
            checks.Evidence(
                clean_losses=self.clean_losses[self.clean_correct],
                clean_gradient_norms=self.clean_gradient_norms[self.clean_correct],
                input_size=math.prod(self.inputs.shape[1:]),
                gradient_stats=self.settings.stats,
                attacks=[
                    checks.AttackOutcome(
                        name=name,
                        label=ATTACKS[name].label,
                        norm=ATTACKS[name].norm,
                        kind=ATTACKS[name].kind,
                        epsilons=spec.epsilons(ATTACKS[name].norm),
                        robust=outcome.robust,
                        cumulative=spec.cascade,
                    )
                    for name, outcome in outcomes.items()
                ],
                coverage=[c for c in coverage.values() if c is not None],
            )
        )
        hits = int(headline_robust.sum())
        return EvaluationResult(
            dataset=self.dataset_name,
            samples=len(self.labels),
            num_classes=self.num_classes,
            input_shape=list(self.inputs.shape[1:]),
            device=str(self.device),
            seconds=0.0,
            clean=metrics.clean_score(self.clean_correct),
            curves=[
                point
                for attack, outcome in outcomes.items()
                for point in metrics.curve(
                    attack,
                    spec.epsilons(ATTACKS[attack].norm),
                    outcome.robust,
                    outcome.confidence,
                    cumulative=spec.cascade,
                )
            ],
            worst_case=[
                point
                for norm, robust in worst.items()
                for point in metrics.worst_case_points(norm, spec.epsilons(norm), robust)
            ],
            per_class=metrics.per_class(self.labels, self.clean_correct, headline_robust),
            minimal_perturbation=minimal,
            checks=found,
            flags=checks.flags(found),
            headline=Headline(
                norm=self.headline_norm,
                epsilon=self.headline_epsilon,
                robust_accuracy=hits / max(len(headline_robust), 1),
                ci95=metrics.wilson_interval(hits, len(headline_robust)),
                attacks=spec.attacks_of(self.headline_norm),
                preset=spec.preset,
                standard=spec.plan.standard,
                reliable=all(check.passed for check in found),
                advice=checks.headline_advice(found),
                budget_source="",
            ),
            gallery=[
                GalleryItem(
                    index=c.index,
                    label=int(self.labels[c.index]),
                    # only correctly classified samples are attacked
                    clean_prediction=int(self.labels[c.index]),
                    adversarial_prediction=c.prediction,
                    attack=c.attack,
                    epsilon=self.headline_epsilon,
                )
                for c in self._chosen()
            ],
            manifest=self._manifest(),
        )

    def _manifest(self) -> Manifest:
        spec = self.spec
        return Manifest(
            preset=spec.preset,
            attacks=[
                AttackRun(
                    attack=name,
                    norm=ATTACKS[name].norm,
                    steps=spec.steps if ATTACKS[name].iterates else None,
                    relative_step=spec.alpha if ATTACKS[name].fixed_step else None,
                    restarts=work.runs(ATTACKS[name], spec),
                    target_classes=spec.target_classes if ATTACKS[name].targeted else None,
                    queries=spec.queries if ATTACKS[name].kind == "gradient_free" else None,
                    cascaded=spec.cascade,
                )
                for name in spec.attacks
            ],
            epsilons_linf=spec.epsilons_linf,
            epsilons_l2=spec.epsilons_l2,
            samples=len(self.labels),
            seed=spec.seed,
            batch_size=spec.batch_size,
            model_sha256=None,
            device=str(self.device),
            libraries={
                "cohort": importlib.metadata.version("cohort"),
                "torch": torch.__version__,
                "numpy": numpy.__version__,
                "python": platform.python_version(),
            },
        )

    def _chosen(self) -> list[_Candidate]:
        """Up to GALLERY_SIZE candidates, taking labels in turn so the gallery shows several classes."""
        by_label: dict[int, list[_Candidate]] = {}
        for candidate in sorted(self.candidates, key=lambda c: c.index):
            by_label.setdefault(int(self.labels[candidate.index]), []).append(candidate)
        chosen: list[_Candidate] = []
        for rank in range(GALLERY_SIZE):
            chosen += [group[rank] for _, group in sorted(by_label.items()) if rank < len(group)]
        return sorted(chosen[:GALLERY_SIZE], key=lambda c: c.index)

    def _artifacts(self, worst: dict[Norm, torch.Tensor], estimates: torch.Tensor | None) -> Artifacts:
        chosen = self._chosen()
        if chosen:
            clean = torch.stack([self.inputs[c.index] for c in chosen])
            adversarial = torch.stack([c.adversarial for c in chosen])
        else:
            clean = self.inputs[:0].clone()
            adversarial = clean.clone()
        minimal = torch.full((len(self.labels),), float("nan"), dtype=torch.float64, device="cpu")
        if estimates is not None:
            minimal[self.targets] = estimates
        rows = []
        for i in range(len(self.labels)):
            row: dict[str, object] = {
                "index": i,
                "label": int(self.labels[i]),
                "clean_prediction": int(self.clean_predictions[i]),
                "clean_correct": bool(self.clean_correct[i]),
            }
            for norm, robust in worst.items():
                for j, eps in enumerate(self.spec.epsilons(norm)):
                    row[f"robust_{norm}_{eps:g}"] = bool(robust[i, j])
            value = float(minimal[i])
            row["minimal_linf"] = None if math.isnan(value) or math.isinf(value) else value
            rows.append(row)
        return Artifacts(clean, adversarial, rows)

"""StreamingFedAvg: weighted FedAvg folded one update at a time."""

from __future__ import annotations

import gc
import math
import weakref

import pytest
import torch

from cohort.domain.training import ServerConfig
from cohort.domain.weights import Tensors, TensorSignature, contiguous_span, decode, encode
from cohort.federated.aggregation import (
    FLUSH_EVERY,
    HEAVY_WEIGHT,
    MAX_UPDATE_VALUE,
    MAX_WEIGHT,
    StreamingFedAvg,
)

SIGNATURE = TensorSignature(
    {
        "conv.weight": (4, 1, 3, 3),
        "conv.bias": (4,),
        "fc.weight": (10, 36),
        "fc.bias": (10,),
        "bn.running_mean": (4,),
    }
)


def _random(signature: TensorSignature, generator: torch.Generator, scale: float = 1.0) -> Tensors:
    return {
        name: torch.randn(shape, generator=generator, dtype=torch.float32) * scale
        for name, shape in signature.shapes.items()
    }


def _storages(tensors: list[torch.Tensor]) -> dict[int, int]:
    """The distinct memory blocks behind some tensors: address -> bytes."""
    return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}


def _held_tensors(aggregator: StreamingFedAvg) -> list[torch.Tensor]:
    """Every tensor the aggregator keeps, however it chooses to store them."""
    found: list[torch.Tensor] = []

    def walk(value: object) -> None:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set):
            for item in value:
                walk(item)

    walk(vars(aggregator))
    return found


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("num_updates", [1, 3, 17])
def test_apply_to_matches_a_direct_weighted_mean_in_float64(seed: int, num_updates: int) -> None:
    # Given a global model and updates with random deltas and random sample counts
    generator = torch.Generator().manual_seed(seed)
    global_weights = _random(SIGNATURE, generator)
    deltas = [_random(SIGNATURE, generator, scale=0.1) for _ in range(num_updates)]
    counts = torch.randint(1, 1000, (num_updates,), generator=generator).tolist()

    # When they are folded in one at a time
    aggregator = StreamingFedAvg(SIGNATURE)
    for delta, count in zip(deltas, counts, strict=True):
        aggregator.add(delta, count)
    result = aggregator.apply_to(global_weights)

    # Then the next global model is w + sum(n_i * d_i) / sum(n_i), computed directly in float64
    total = sum(counts)
    assert set(result) == set(SIGNATURE.shapes)
    for name in SIGNATURE.shapes:
        weighted = sum(n * d[name].double() for n, d in zip(counts, deltas, strict=True))
        expected = global_weights[name].double() + weighted / total
        assert result[name].dtype == torch.float32
        assert result[name].shape == expected.shape
        torch.testing.assert_close(result[name].double(), expected, rtol=1e-5, atol=1e-6)
    assert aggregator.total_weight == total
    assert aggregator.reports == num_updates


def test_the_step_is_the_sample_weighted_mean_of_the_deltas() -> None:
    # Given two updates of different sizes
    generator = torch.Generator().manual_seed(7)
    first, second = _random(SIGNATURE, generator), _random(SIGNATURE, generator)
    aggregator = StreamingFedAvg(SIGNATURE)
    aggregator.add(first, 30)
    aggregator.add(second, 10)

    # When it is applied to a model of zeros
    mean = aggregator.apply_to(SIGNATURE.zeros())

    # Then it is (30 * first + 10 * second) / 40
    for name in SIGNATURE.shapes:
        torch.testing.assert_close(mean[name], (30 * first[name] + 10 * second[name]) / 40)


def test_fedavg_is_weighted_by_sample_count_not_a_plain_mean() -> None:
    # Given a device with 1 sample that moved every weight by 0 and one with 3 samples that moved it by 1
    signature = TensorSignature({"w": (2, 2)})
    global_weights = {"w": torch.zeros(2, 2)}
    aggregator = StreamingFedAvg(signature)
    aggregator.add({"w": torch.zeros(2, 2)}, 1)
    aggregator.add({"w": torch.ones(2, 2)}, 3)

    # When the update is applied
    result = aggregator.apply_to(global_weights)["w"]

    # Then the larger device counts three times as much: 0.75, not the unweighted 0.5
    torch.testing.assert_close(result, torch.full((2, 2), 0.75))
    assert not torch.allclose(result, torch.full((2, 2), 0.5))


def test_a_single_update_gives_global_plus_its_delta_whatever_its_weight() -> None:
    # Given one update with an arbitrary sample count
    generator = torch.Generator().manual_seed(3)
    global_weights, delta = _random(SIGNATURE, generator), _random(SIGNATURE, generator)
    aggregator = StreamingFedAvg(SIGNATURE)
    aggregator.add(delta, 123)

    # When it is applied
    result = aggregator.apply_to(global_weights)

    # Then the new model is exactly the client's model
    for name in SIGNATURE.shapes:
        torch.testing.assert_close(result[name], global_weights[name] + delta[name])


def test_neither_the_global_model_nor_the_deltas_are_modified() -> None:
    # Given a global model and an update, with copies kept aside
    generator = torch.Generator().manual_seed(4)
    global_weights, delta = _random(SIGNATURE, generator), _random(SIGNATURE, generator)
    global_before = {name: t.clone() for name, t in global_weights.items()}
    delta_before = {name: t.clone() for name, t in delta.items()}

    # When the update is aggregated and applied
    aggregator = StreamingFedAvg(SIGNATURE)
    aggregator.add(delta, 5)
    aggregator.apply_to(global_weights)

    # Then the caller's tensors are untouched
    for name in SIGNATURE.shapes:
        assert torch.equal(global_weights[name], global_before[name])
        assert torch.equal(delta[name], delta_before[name])


@pytest.mark.parametrize("weight", [0, -1, -100])
def test_a_non_positive_weight_is_refused_and_changes_nothing(weight: int) -> None:
    # Given an aggregator holding one valid update
    aggregator = StreamingFedAvg(SIGNATURE)
    aggregator.add({name: torch.ones(shape) for name, shape in SIGNATURE.shapes.items()}, 2)

    # When an update with a non-positive sample count is added
    with pytest.raises(ValueError, match="positive"):
        aggregator.add({name: torch.full(shape, 100.0) for name, shape in SIGNATURE.shapes.items()}, weight)

    # Then the aggregate is as before
    assert aggregator.total_weight == 2
    assert aggregator.reports == 1
    for name, shape in SIGNATURE.shapes.items():
        torch.testing.assert_close(aggregator.apply_to(SIGNATURE.zeros())[name], torch.ones(shape))


def test_with_no_updates_there_is_nothing_to_apply() -> None:
    # Given an aggregator nobody reported to
    aggregator = StreamingFedAvg(SIGNATURE)

    # When the mean is asked for, then it refuses rather than dividing by zero
    with pytest.raises(ValueError, match="no update"):
        aggregator.apply_to(SIGNATURE.zeros())


def test_memory_stays_at_one_model_however_many_updates_are_added() -> None:
    # Given a fresh aggregator and the tensors it holds before any update
    aggregator = StreamingFedAvg(SIGNATURE)
    model_numel = sum(torch.Size(shape).numel() for shape in SIGNATURE.shapes.values())
    before = _storages(_held_tensors(aggregator))

    # When many updates are added and each is dropped by the caller straight after
    generator = torch.Generator().manual_seed(5)
    dropped = []
    for _ in range(50):
        delta = _random(SIGNATURE, generator)
        dropped.extend(weakref.ref(t) for t in delta.values())
        aggregator.add(delta, 3)
        del delta
    gc.collect()

    # Then none of the updates is kept alive by the aggregator
    assert all(ref() is None for ref in dropped)
    # And it still holds one running sum in float64 (twice the float32 model), its float32 partial
    # (once), and a buffer of at most 512 KiB to widen values into: the same buffers, updated in place
    after = _storages(_held_tensors(aggregator))
    assert model_numel * 12 < sum(after.values()) <= model_numel * 12 + 512 * 1024
    assert after == before
    assert aggregator.reports == 50


def test_a_decoded_update_folds_as_one_span_with_the_same_result() -> None:
    # Given the same updates as separate tensors and as decoded safetensors files
    generator = torch.Generator().manual_seed(11)
    updates = [(_random(SIGNATURE, generator), weight) for weight in (5, 17, 2)]
    decoded = [(decode(encode(delta), SIGNATURE), weight) for delta, weight in updates]
    assert all(contiguous_span(delta, sorted(delta)) is not None for delta, _ in decoded)

    # When each set is aggregated
    separate, spans = StreamingFedAvg(SIGNATURE), StreamingFedAvg(SIGNATURE)
    for (delta, weight), (viewed, _) in zip(updates, decoded, strict=True):
        separate.add(delta, weight)
        spans.add(viewed, weight)

    # Then the fast path gives exactly what the per-tensor path gives
    for name, tensor in separate.apply_to(SIGNATURE.zeros()).items():
        torch.testing.assert_close(spans.apply_to(SIGNATURE.zeros())[name], tensor, rtol=0, atol=0)


def test_tensors_from_separate_allocations_are_not_one_span() -> None:
    delta = _random(SIGNATURE, torch.Generator().manual_seed(3))
    assert contiguous_span(delta, sorted(delta)) is None


@pytest.mark.parametrize("weight", [HEAVY_WEIGHT, MAX_WEIGHT], ids=["float32-partial", "float64-total"])
def test_reports_at_the_bounds_do_not_overflow(weight: float) -> None:
    # Given more than two partials' worth of reports that each hold the largest value any job accepts
    # (max_update_norm's ceiling), with the heaviest weight of the float32 path, or of any report
    extreme = SIGNATURE.zeros()
    extreme["fc.weight"][0, 0] = MAX_UPDATE_VALUE
    aggregator = StreamingFedAvg(SIGNATURE)
    for _ in range(2 * FLUSH_EVERY + 3):
        aggregator.add(extreme, weight)

    # When applied
    result = aggregator.apply_to(SIGNATURE.zeros())

    # Then the value is the exact mean: nothing came near float32's limit of 3.4e38, since a partial
    # holds at most FLUSH_EVERY x MAX_WEIGHT x MAX_UPDATE_VALUE = 1.6e14
    assert all(torch.isfinite(tensor).all() for tensor in result.values())
    assert float(result["fc.weight"][0, 0]) == MAX_UPDATE_VALUE


@pytest.mark.parametrize(
    ("max_value", "max_weight", "flush_every"),
    [(3e38, 2.0, 1), (1e30, 1e7, 16), (1e6, 1e7, 10**20), (1e6, 0.0, 16)],
)
def test_bounds_under_which_the_float32_partial_could_overflow_are_refused(
    max_value: float, max_weight: float, flush_every: int
) -> None:
    with pytest.raises(ValueError, match="overflow the float32 partial"):
        StreamingFedAvg(SIGNATURE, max_value=max_value, max_weight=max_weight, flush_every=flush_every)


@pytest.mark.parametrize(
    ("weight", "factor", "message"),
    [(MAX_WEIGHT * 2, 1.0, "at most"), (10, 1.5, "factor"), (10, 0.0, "factor"), (10, math.nan, "factor")],
)
def test_a_report_beyond_the_bounds_is_refused_and_changes_nothing(
    weight: float, factor: float, message: str
) -> None:
    # Given an aggregator holding one update
    aggregator = StreamingFedAvg(SIGNATURE)
    aggregator.add({name: torch.ones(shape) for name, shape in SIGNATURE.shapes.items()}, 2)

    # When a report heavier than the bound, or scaled up, is added
    with pytest.raises(ValueError, match=message):
        aggregator.add(
            {name: torch.full(shape, 100.0) for name, shape in SIGNATURE.shapes.items()}, weight, factor
        )

    # Then it is refused, and the aggregate is as before
    assert (aggregator.total_weight, aggregator.reports) == (2, 1)
    for name, shape in SIGNATURE.shapes.items():
        torch.testing.assert_close(aggregator.apply_to(SIGNATURE.zeros())[name], torch.ones(shape))


@pytest.mark.parametrize("flush_every", [1, 3, FLUSH_EVERY])
def test_partials_flushed_every_k_reports_give_the_float64_sum_to_float32_partial_rounding(
    flush_every: int,
) -> None:
    # Given 40 updates with counts of 1 to 4096, the float32 fast path's range
    generator = torch.Generator().manual_seed(21)
    deltas = [_random(SIGNATURE, generator, scale=0.1) for _ in range(40)]
    counts = torch.randint(1, int(HEAVY_WEIGHT) + 1, (40,), generator=generator).tolist()

    # When folded with a flush every k reports
    aggregator = StreamingFedAvg(SIGNATURE, flush_every=flush_every)
    for delta, count in zip(deltas, counts, strict=True):
        aggregator.add(delta, count)
    result = aggregator.apply_to(SIGNATURE.zeros())

    # Then each mean value is the one float64 fold gives, to within the partials' float32 rounding:
    # each add into a partial rounds once to 2^-24 of that partial, so the sum is off by at most
    # k x 2^-24 x (the sum of |n_i d_i|), then divided by the total weight (and rounded to float32)
    total = sum(counts)
    for name in SIGNATURE.shapes:
        exact = sum(n * d[name].double() for n, d in zip(counts, deltas, strict=True)) / total
        magnitude = sum(n * d[name].double().abs() for n, d in zip(counts, deltas, strict=True)) / total
        bound = flush_every * 2.0**-24 * magnitude + exact.abs() * 2.0**-24
        assert ((result[name].double() - exact).abs() <= bound).all()


def test_a_flush_changes_nothing_but_where_the_sum_is_held() -> None:
    # Given the same reports folded with one partial per report and with one partial for them all
    generator = torch.Generator().manual_seed(22)
    updates = [(_random(SIGNATURE, generator), weight) for weight in (3, 5, 7)]
    every, once = StreamingFedAvg(SIGNATURE, flush_every=1), StreamingFedAvg(SIGNATURE, flush_every=16)
    for delta, weight in updates:
        every.add(delta, weight)
        once.add(delta, weight)

    # When applied twice: apply_to flushes what the partial holds, and a second call finds it empty
    first, second = once.apply_to(SIGNATURE.zeros()), once.apply_to(SIGNATURE.zeros())

    # Then both give the float64 mean to float32 rounding, and the second call the same as the first
    for name, tensor in every.apply_to(SIGNATURE.zeros()).items():
        torch.testing.assert_close(first[name], tensor, rtol=1e-6, atol=1e-7)
        assert torch.equal(second[name], first[name])


def test_a_clipping_factor_scales_the_update_but_not_its_weight() -> None:
    # Given an update of +1 clipped to a quarter, with 30 samples, and one of 0 with 10
    signature = TensorSignature({"w": (2, 2)})
    aggregator = StreamingFedAvg(signature)
    aggregator.add({"w": torch.ones(2, 2)}, 30, factor=0.25)
    aggregator.add({"w": torch.zeros(2, 2)}, 10)

    # When applied, then the step is 30 x 0.25 / 40: the factor shrinks the update, the weight stays
    assert aggregator.total_weight == 40
    torch.testing.assert_close(aggregator.apply_to({"w": torch.zeros(2, 2)})["w"], torch.full((2, 2), 0.1875))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reweighing_an_update_equals_having_added_it_with_the_new_weight(seed: int) -> None:
    # Given updates folded with their claimed counts, one of them huge and clipped
    generator = torch.Generator().manual_seed(seed)
    deltas = [_random(SIGNATURE, generator, scale=0.1) for _ in range(4)]
    claimed = [12, 250, 10_000_000, 31]
    factors = [1.0, 0.5, 0.125, 1.0]
    streamed = StreamingFedAvg(SIGNATURE)
    for delta, weight, factor in zip(deltas, claimed, factors, strict=True):
        streamed.add(delta, weight, factor)

    # When the huge one is brought down to 40.5 afterwards
    streamed.reweigh(deltas[2], factors[2], old_weight=10_000_000, new_weight=40.5)

    # Then the model is the one folding it with 40.5 from the start gives, to float64 rounding
    direct = StreamingFedAvg(SIGNATURE)
    for delta, weight, factor in zip(deltas, [12, 250, 40.5, 31], factors, strict=True):
        direct.add(delta, weight, factor)
    assert streamed.total_weight == direct.total_weight == 12 + 250 + 40.5 + 31
    global_weights = _random(SIGNATURE, generator)
    for name, tensor in direct.apply_to(global_weights).items():
        torch.testing.assert_close(streamed.apply_to(global_weights)[name], tensor, rtol=1e-6, atol=1e-7)


def test_reweighing_after_flushes_equals_having_added_with_the_new_weights() -> None:
    # Given 40 updates over more than two partials: counts of 1 to 4096 on the float32 path, and two
    # heavy ones, a 1,000,000 and a clipped 9,000, on the float64 one
    generator = torch.Generator().manual_seed(23)
    deltas = [_random(SIGNATURE, generator, scale=0.1) for _ in range(40)]
    claimed = torch.randint(1, int(HEAVY_WEIGHT) + 1, (40,), generator=generator).tolist()
    claimed[5], claimed[33] = 1_000_000, 9_000
    factors = [0.5 if i == 33 else 1.0 for i in range(40)]
    streamed = StreamingFedAvg(SIGNATURE)
    for delta, weight, factor in zip(deltas, claimed, factors, strict=True):
        streamed.add(delta, weight, factor)

    # When the share cap brings both heavy ones and a light one down to 500, after the flushes
    capped = list(claimed)
    for i in (5, 33, 12):
        streamed.reweigh(deltas[i], factors[i], old_weight=claimed[i], new_weight=500)
        capped[i] = 500

    # Then the model is the one folding them with 500 from the start gives: the heavy ones' weights
    # were changed in float64, the light one's leaves its partial's float32 rounding, at most
    # FLUSH_EVERY x 2^-24 of its partial's values, a small share of the step
    direct = StreamingFedAvg(SIGNATURE)
    for delta, weight, factor in zip(deltas, capped, factors, strict=True):
        direct.add(delta, weight, factor)
    assert streamed.total_weight == direct.total_weight == sum(capped)
    global_weights = _random(SIGNATURE, generator)
    for name, tensor in direct.apply_to(global_weights).items():
        torch.testing.assert_close(streamed.apply_to(global_weights)[name], tensor, rtol=1e-6, atol=1e-7)


def test_a_weight_cannot_be_reweighed_to_nothing() -> None:
    aggregator = StreamingFedAvg(SIGNATURE)
    delta = _random(SIGNATURE, torch.Generator().manual_seed(1))
    aggregator.add(delta, 5)

    with pytest.raises(ValueError, match="positive"):
        aggregator.reweigh(delta, 1.0, old_weight=5, new_weight=0)

    assert aggregator.total_weight == 5


@pytest.mark.parametrize("decoded", [False, True], ids=["separate-tensors", "one-span"])
def test_a_model_larger_than_one_widening_step_folds_and_applies_every_value(decoded: bool) -> None:
    # Given a model of 1,200,005 values, more than the 4 MiB of float64 the fold widens at a time
    signature = TensorSignature({"big": (1_200_000,), "small": (5,)})
    generator = torch.Generator().manual_seed(9)
    global_weights, first, second = (_random(signature, generator) for _ in range(3))
    if decoded:
        first, second = (decode(encode(delta), signature) for delta in (first, second))

    # When two updates are folded in and applied
    aggregator = StreamingFedAvg(signature)
    aggregator.add(first, 3, factor=0.5)
    aggregator.add(second, 7)
    result = aggregator.apply_to(global_weights)

    # Then every value, across the steps' boundaries, is the float64 mean, to float32 rounding
    for name in signature.shapes:
        weighted = 3 * 0.5 * first[name].double() + 7 * second[name].double()
        expected = global_weights[name].double() + weighted / 10
        torch.testing.assert_close(result[name].double(), expected, rtol=1e-6, atol=1e-7)


def test_the_partial_sums_bounds_are_the_largest_a_job_may_set() -> None:
    # The float32 partial is safe only if no job may accept larger values or weights than it assumes
    limits = {
        name: next(meta.le for meta in ServerConfig.model_fields[name].metadata if hasattr(meta, "le"))
        for name in ("max_update_norm", "max_samples_per_report")
    }
    assert limits == {"max_update_norm": MAX_UPDATE_VALUE, "max_samples_per_report": MAX_WEIGHT}

"""The digits data set and its non-IID device shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from cohort.datasets import digits
from cohort.datasets.digits import NUM_CLASSES, Split
from cohort.domain.errors import InvalidInput


@pytest.fixture(scope="module")
def splits() -> tuple[Split, Split]:
    return digits.load()


@pytest.fixture(scope="module")
def train(splits: tuple[Split, Split]) -> Split:
    return splits[0]


def _rows(*parts: Split) -> list[bytes]:
    """Each sample as (image, label) bytes, sorted: a multiset that ignores order but keeps pairs."""
    rows = []
    for part in parts:
        images = part.inputs.reshape(len(part), -1).numpy()
        labels = part.labels.numpy()
        rows.extend(
            image.tobytes() + int(label).to_bytes(1, "little")
            for image, label in zip(images, labels, strict=True)
        )
    return sorted(rows)


def _label_mix(shard: Split) -> np.ndarray:
    counts = np.bincount(shard.labels.numpy(), minlength=NUM_CLASSES)
    return counts / counts.sum()


def _mean_distance_from_overall(shards: list[Split], train: Split) -> float:
    """Mean total-variation distance between each shard's label mix and the whole set's."""
    overall = _label_mix(train)
    return float(np.mean([0.5 * np.abs(_label_mix(shard) - overall).sum() for shard in shards]))


# -- load ------------------------------------------------------------------------------


def test_load_splits_every_image_exactly_once_between_train_and_test(splits: tuple[Split, Split]) -> None:
    # Given the default split
    train, test = splits
    full = load_digits()
    everything = Split(
        torch.from_numpy((full.images / 16.0).astype(np.float32)[:, None]),
        torch.from_numpy(full.target.astype(np.int64)),
    )

    # Then train and test together are the full set, with nothing in both and nothing lost
    assert len(train) + len(test) == len(everything) == 1_797
    assert _rows(train, test) == _rows(everything)
    assert len(test) == pytest.approx(0.25 * 1_797, abs=1)


def test_load_gives_float_images_in_the_unit_range_and_integer_labels(splits: tuple[Split, Split]) -> None:
    for part in splits:
        assert part.inputs.dtype == torch.float32
        assert part.inputs.shape[1:] == digits.IMAGE_SHAPE
        assert part.labels.dtype == torch.int64
        assert part.inputs.shape[0] == part.labels.shape[0]
        assert part.inputs.min() >= 0.0
        assert part.inputs.max() <= 1.0
    # Scaled to use the range, not merely bounded by it
    assert splits[0].inputs.max() == 1.0


def test_the_test_set_has_every_class_in_proportion(splits: tuple[Split, Split]) -> None:
    train, test = splits

    assert set(test.labels.tolist()) == set(range(NUM_CLASSES))
    np.testing.assert_allclose(_label_mix(test), _label_mix(train), atol=0.01)


def test_channels_last_images_are_the_same_pictures_laid_out_channels_last(train: Split) -> None:
    # When the images are shaped for a model that takes [8, 8, 1], as a Keras model does
    shaped = train.shaped([8, 8, 1])

    # Then each is its channels-first image with the channel axis moved last, label for label
    assert torch.equal(shaped.inputs, train.inputs.permute(0, 2, 3, 1))
    assert shaped.labels is train.labels


def test_images_are_not_shaped_for_a_model_of_another_input_size(train: Split) -> None:
    expected = r"the digits set has \[1, 8, 8\] inputs; the model takes \[3, 32, 32\]"
    with pytest.raises(InvalidInput, match=expected):
        train.shaped([3, 32, 32])


def test_load_is_deterministic_for_a_seed_and_varies_with_it(train: Split) -> None:
    again, _ = digits.load(seed=0)
    other, _ = digits.load(seed=1)

    assert torch.equal(again.inputs, train.inputs)
    assert torch.equal(again.labels, train.labels)
    assert not torch.equal(other.labels, train.labels)


# -- non_iid_shards --------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.5, 1_000.0])
@pytest.mark.parametrize("num_devices", [1, 2, 10, 50])
def test_shards_partition_every_training_sample_exactly_once(
    train: Split, num_devices: int, alpha: float
) -> None:
    # When the training set is sharded
    shards = digits.non_iid_shards(train, num_devices, alpha=alpha, seed=3)

    # Then there is one non-empty shard per device and together they are the training set
    assert len(shards) == num_devices
    assert all(len(shard) >= 1 for shard in shards)
    assert sum(len(shard) for shard in shards) == len(train)
    assert _rows(*shards) == _rows(train)


def test_every_device_gets_a_sample_even_with_as_many_devices_as_samples() -> None:
    # Given a small training set and a very skewed split, one device per sample
    small = Split(torch.arange(30, dtype=torch.float32).reshape(30, 1, 1, 1), torch.arange(30) % NUM_CLASSES)

    shards = digits.non_iid_shards(small, 30, alpha=0.05, seed=0)

    # Then nobody is left empty, so each device has exactly one sample, and none is duplicated
    assert [len(shard) for shard in shards] == [1] * 30
    assert sorted(int(shard.inputs.item()) for shard in shards) == list(range(30))


@pytest.mark.parametrize("num_devices", [0, -1, 10_000])
def test_an_impossible_number_of_devices_is_refused(train: Split, num_devices: int) -> None:
    with pytest.raises(ValueError, match="devices"):
        digits.non_iid_shards(train, num_devices)


def test_shards_are_deterministic_for_a_seed(train: Split) -> None:
    first = digits.non_iid_shards(train, 8, alpha=0.5, seed=11)
    second = digits.non_iid_shards(train, 8, alpha=0.5, seed=11)
    other = digits.non_iid_shards(train, 8, alpha=0.5, seed=12)

    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.inputs, b.inputs)
        assert torch.equal(a.labels, b.labels)
    assert [len(s) for s in first] != [len(s) for s in other]


def test_small_alpha_gives_skewed_label_mixes_and_large_alpha_near_iid(train: Split) -> None:
    # Given the same devices split with a small and a very large concentration
    skewed = digits.non_iid_shards(train, 10, alpha=0.5, seed=0)
    near_iid = digits.non_iid_shards(train, 10, alpha=1_000.0, seed=0)

    # When each shard's label mix is compared with the whole training set's
    skewed_distance = _mean_distance_from_overall(skewed, train)
    near_iid_distance = _mean_distance_from_overall(near_iid, train)

    # Then alpha=0.5 shards are far from the overall mix, and alpha=1000 shards close to it
    assert skewed_distance > 0.3
    assert near_iid_distance < 0.05
    assert skewed_distance > 5 * near_iid_distance
    # And with alpha=0.5 each device is dominated by a few digits
    assert np.mean([_label_mix(shard).max() for shard in skewed]) > 0.3

"""scikit-learn's handwritten digits, split into non-IID device shards.

The set ships inside scikit-learn, so nothing is downloaded. Each device's
label mix is drawn from a Dirichlet distribution: small ``alpha`` gives each
device a few dominant digits, as real phones would have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from cohort.domain.errors import InvalidInput

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
_PIXEL_MAX = 16.0


@dataclass(frozen=True)
class Split:
    inputs: torch.Tensor  # float32, (n, 1, 8, 8), scaled to [0, 1]
    labels: torch.Tensor  # int64, (n,)

    def __len__(self) -> int:
        return len(self.labels)

    def shaped(self, input_shape: Sequence[int]) -> Split:
        """The same images laid out as a model with ``input_shape`` takes them.

        With one channel, ``[64]``, ``[1, 8, 8]`` and channels-last ``[8, 8, 1]`` all keep the
        pixels in the same order, so a reshape is exact.
        """
        if math.prod(input_shape) != math.prod(IMAGE_SHAPE):
            raise InvalidInput(
                f"the digits set has {list(IMAGE_SHAPE)} inputs; the model takes {list(input_shape)}"
            )
        return Split(self.inputs.reshape(len(self), *input_shape), self.labels)


def load(test_fraction: float = 0.25, seed: int = 0) -> tuple[Split, Split]:
    """A stratified train/test split of all 1,797 images."""
    digits = load_digits()
    images = (digits.images / _PIXEL_MAX).astype(np.float32)[:, None, :, :]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    return _split(x_train, y_train), _split(x_test, y_test)


def _split(images: np.ndarray, labels: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64)))


def non_iid_shards(train: Split, num_devices: int, alpha: float = 0.5, seed: int = 0) -> list[Split]:
    """Partition ``train`` across devices with Dirichlet(alpha) label proportions.

    Every sample goes to exactly one device and every device gets at least one.
    """
    if not 1 <= num_devices <= len(train):
        raise ValueError(f"need between 1 and {len(train)} devices")
    rng = np.random.default_rng(seed)
    labels = train.labels.numpy()
    members: list[list[int]] = [[] for _ in range(num_devices)]
    for label in range(NUM_CLASSES):
        indices = rng.permutation(np.flatnonzero(labels == label))
        shares = rng.dirichlet(np.full(num_devices, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(indices)).astype(int)
        for device, part in enumerate(np.split(indices, cuts)):
            members[device].extend(part.tolist())
    for device in range(num_devices):  # steal one sample for any empty device
        if not members[device]:
            donor = max(range(num_devices), key=lambda d: len(members[d]))
            members[device].append(members[donor].pop())
    return [Split(train.inputs[idx], train.labels[idx]) for idx in (torch.tensor(sorted(m)) for m in members)]

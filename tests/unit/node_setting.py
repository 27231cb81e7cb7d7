"""A training job on the in-memory node store, with a clock the test moves: the FL node's tests need
no AWS and no sleep."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cohort.domain.architecture import parse_architecture
from cohort.domain.records import ModelRecord, ModelStatus, TrainingJobRecord
from cohort.domain.training import Availability
from cohort.domain.weights import Tensors, TensorSignature, encode, trainable_state
from cohort.federated.memory_store import MemoryNodeStore
from cohort.federated.node_store import at_time

JOB_ID = "job-1"
MODEL_ID = "model-1"
DATASET_ID = "app-1"
OWNER_ID = "scientist-1"
INITIAL_WEIGHTS_KEY = f"models/{MODEL_ID}/weights.safetensors"
START = 1_750_000_000.0  # a plausible Unix time: the stores turn it into dates
TINY_MLP = {
    "input_shape": [4],
    "num_classes": 2,
    "layers": [
        {"type": "Linear", "in_features": 4, "out_features": 3},
        {"type": "ReLU"},
        {"type": "Linear", "in_features": 3, "out_features": 2},
    ],
}
SIGNATURE = TensorSignature.of(parse_architecture(TINY_MLP).build())
CLIENT_CONFIG = {"batch_size": 8, "learning_rate": 0.1, "local_epochs": 1, "momentum": 0.0}
AVAILABLE = Availability(battery=0.9, charging=True, network="wifi")


@dataclass
class FakeClock:
    """The node's only clock: it stands still until the test moves it."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def initial_weights() -> Tensors:
    torch.manual_seed(0)
    return trainable_state(parse_architecture(TINY_MLP).build())


def job_record(job_id: str = JOB_ID, **server_config: object) -> TrainingJobRecord:
    """A pending job with this server config, as the orchestrator leaves it for its node."""
    return TrainingJobRecord(
        job_id,
        owner_id=OWNER_ID,
        model_id=MODEL_ID,
        dataset_id=DATASET_ID,
        client_config=CLIENT_CONFIG,
        server_config=server_config,
        global_weights_key=INITIAL_WEIGHTS_KEY,
        created_at=at_time(START),
        updated_at=at_time(START),
    )


def model_record() -> ModelRecord:
    return ModelRecord(
        MODEL_ID,
        owner_id=OWNER_ID,
        name="tiny-mlp",
        architecture=TINY_MLP,
        weights_key=INITIAL_WEIGHTS_KEY,
        status=ModelStatus.READY,
        created_at=at_time(START),
    )


def memory_store(**server_config: object) -> MemoryNodeStore:
    """A memory store holding a pending job with this server config, its model and initial weights."""
    weights = {INITIAL_WEIGHTS_KEY: encode(initial_weights())}
    return MemoryNodeStore(job_record(**server_config), model_record(), weights)


def delta(value: float) -> Tensors:
    """An update that moves every weight by ``value``."""
    return {name: torch.full(shape, value) for name, shape in SIGNATURE.shapes.items()}


class NodeKilled(Exception):
    """Stands for the node process dying at a given store call."""


class Mortal:
    """A node store through which the node can be killed: once :meth:`die_at` names a method, calling
    it raises :class:`NodeKilled` and writes nothing, as if the node had died just before it. A new
    node started over :attr:`store` then finds what a restart would."""

    def __init__(self, store: object) -> None:
        self.store = store
        self._fatal: str | None = None

    def die_at(self, method: str) -> None:
        self._fatal = method

    def __getattr__(self, name: str) -> object:
        if name == self._fatal:

            def killed(*args: object, **kwargs: object) -> None:
                raise NodeKilled(f"the node died before {name}")

            return killed
        return getattr(self.store, name)

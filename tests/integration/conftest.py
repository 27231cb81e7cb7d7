"""A ready-made setting for protocol tests: an app with an API key, and a scientist with a model."""

from __future__ import annotations

import pytest
import torch

from cohort.catalogue import Group
from cohort.domain.architecture import parse_architecture
from cohort.domain.weights import trainable_state

from .scenario import TINY_MLP, Setting


@pytest.fixture
def setting(people) -> Setting:
    developer = people.client(Group.APP_DEVELOPERS)
    dataset = developer.register_dataset("tests-app", [{"name": "x", "type": "float", "min": 0, "max": 1}])
    api_key = developer.create_api_key(dataset["dataset_id"])["api_key"]
    scientist = people.client(Group.SCIENTISTS)
    torch.manual_seed(0)
    weights = trainable_state(parse_architecture(TINY_MLP).build())
    model = scientist.create_model("tiny-mlp", TINY_MLP, weights)
    return Setting(scientist, dataset["dataset_id"], api_key, model["model_id"], weights)

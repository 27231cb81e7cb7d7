"""Building classifiers from JSON architecture specs, and their weight signatures."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from cohort.domain.architecture import MAX_PARAMETERS, ArchitectureSpec, parse_architecture
from cohort.domain.errors import InvalidInput
from cohort.domain.weights import TensorSignature, load_into, trainable_state

CNN = {
    "input_shape": [1, 8, 8],
    "num_classes": 10,
    "layers": [
        {"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d", "num_features": 8},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Dropout", "p": 0.25},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 128, "out_features": 10},
    ],
}

MLP = {
    "input_shape": [64],
    "num_classes": 10,
    "layers": [
        {"type": "Linear", "in_features": 64, "out_features": 32},
        {"type": "BatchNorm1d", "num_features": 32},
        {"type": "Tanh"},
        {"type": "Linear", "in_features": 32, "out_features": 16},
        {"type": "GELU"},
        {"type": "Linear", "in_features": 16, "out_features": 10},
    ],
}

# Each layer's output of the wrong size for the next, and the position that should be blamed.
MISMATCHES = [
    pytest.param(
        {
            "input_shape": [2, 8, 8],
            "num_classes": 10,
            "layers": [
                {"type": "ChannelAffine", "num_features": 3},
                {"type": "Flatten"},
                {"type": "Linear", "in_features": 128, "out_features": 10},
            ],
        },
        "layer 0 (ChannelAffine) scales 3 channels; its input has shape [2, 8, 8]",
        id="channel-affine-features",
    ),
    pytest.param(
        {
            "input_shape": [64],
            "num_classes": 10,
            "layers": [
                {"type": "Linear", "in_features": 64, "out_features": 32},
                {"type": "ReLU"},
                {"type": "Linear", "in_features": 30, "out_features": 10},
            ],
        },
        "layer 2 (Linear)",
        id="linear-in-features",
    ),
    pytest.param(
        {
            "input_shape": [1, 8, 8],
            "num_classes": 10,
            "layers": [
                {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3},
                {"type": "Flatten"},
                {"type": "Linear", "in_features": 144, "out_features": 10},
            ],
        },
        "layer 0 (Conv2d)",
        id="conv-in-channels",
    ),
    pytest.param(
        {
            "input_shape": [1, 8, 8],
            "num_classes": 10,
            "layers": [
                {"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3},
                {"type": "Flatten"},
                {"type": "Linear", "in_features": 256, "out_features": 10},
            ],
        },
        "layer 2 (Linear)",
        id="flattened-size-after-conv",
    ),
    pytest.param(
        {
            "input_shape": [1, 8, 8],
            "num_classes": 10,
            "layers": [
                {"type": "MaxPool2d", "kernel_size": 2},
                {"type": "AvgPool2d", "kernel_size": 8},
                {"type": "Flatten"},
                {"type": "Linear", "in_features": 1, "out_features": 10},
            ],
        },
        "layer 1 (AvgPool2d)",
        id="pool-bigger-than-input",
    ),
    pytest.param(
        {
            "input_shape": [64],
            "num_classes": 10,
            "layers": [
                {"type": "Linear", "in_features": 64, "out_features": 32},
                {"type": "BatchNorm1d", "num_features": 16},
                {"type": "Linear", "in_features": 32, "out_features": 10},
            ],
        },
        "layer 1 (BatchNorm1d)",
        id="batchnorm-features",
    ),
    pytest.param(
        {
            "input_shape": [64],
            "num_classes": 10,
            "layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 10, "kernel_size": 3}],
        },
        "layer 0 (Conv2d)",
        id="conv-on-flat-input",
    ),
]


def _spec(document: dict) -> ArchitectureSpec:
    return parse_architecture(copy.deepcopy(document))


def _refusal(document: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_architecture(document)
    assert caught.value.status_code == 422
    return caught.value.message


# -- building --------------------------------------------------------------------------


@pytest.mark.parametrize("document", [pytest.param(CNN, id="cnn"), pytest.param(MLP, id="mlp")])
@pytest.mark.parametrize("batch", [1, 5, 32])
def test_a_valid_spec_builds_a_cpu_module_giving_one_logit_per_class(document: dict, batch: int) -> None:
    # Given a valid spec
    spec = _spec(document)

    # When it is built and run on a batch
    module = spec.build().eval()
    with torch.no_grad():
        logits = module(torch.rand(batch, *document["input_shape"]))

    # Then it is a real (CPU) module producing (batch, num_classes) finite logits
    assert all(p.device.type == "cpu" for p in module.parameters())
    assert logits.shape == (batch, document["num_classes"])
    assert torch.isfinite(logits).all()


def test_the_built_module_trains() -> None:
    # Given a module built from a spec
    module = _spec(MLP).build()
    before = {name: t.clone() for name, t in trainable_state(module).items()}

    # When one optimiser step is taken
    loss = torch.nn.functional.cross_entropy(module(torch.rand(8, 64)), torch.randint(0, 10, (8,)))
    loss.backward()
    torch.optim.SGD(module.parameters(), lr=0.1).step()

    # Then its weights change
    after = trainable_state(module)
    assert any(not torch.equal(before[name], after[name]) for name in before)


# -- the allow-list --------------------------------------------------------------------


@pytest.mark.parametrize("layer_type", ["Lambda", "Module", "Sequential", "Identity", "linear", "exec"])
def test_a_layer_type_outside_the_allow_list_is_refused(layer_type: str) -> None:
    document = copy.deepcopy(MLP)
    document["layers"].insert(1, {"type": layer_type, "code": "__import__('os').system('id')"})

    message = _refusal(document)

    assert "layers.1" in message
    assert layer_type in message


def test_a_layer_without_a_type_is_refused() -> None:
    document = copy.deepcopy(MLP)
    del document["layers"][0]["type"]

    assert "layers.0" in _refusal(document)


def test_an_extra_field_on_an_allowed_layer_is_refused() -> None:
    # Given a legitimate layer smuggling a code field
    document = copy.deepcopy(MLP)
    document["layers"][0]["forward"] = "lambda x: __import__('os').system('id')"

    # When it is parsed, then the extra field is refused and named
    message = _refusal(document)
    assert "layers.0" in message
    assert "forward" in message


def test_an_extra_top_level_field_is_refused() -> None:
    document = {**copy.deepcopy(MLP), "init": "import os"}

    assert "init" in _refusal(document)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param("Sequential(Linear(64, 10))", id="a-string"),
        pytest.param(None, id="null"),
        pytest.param([], id="a-list"),
        pytest.param({**MLP, "layers": []}, id="no-layers"),
        pytest.param({**MLP, "num_classes": 1}, id="one-class"),
        pytest.param({**MLP, "input_shape": []}, id="empty-input-shape"),
        pytest.param({**MLP, "input_shape": [1, 1, 8, 8]}, id="four-d-input"),
    ],
)
def test_malformed_documents_are_refused_as_invalid_input(document: object) -> None:
    assert _refusal(document).startswith("invalid architecture")


# -- shape checks ----------------------------------------------------------------------


@pytest.mark.parametrize(("document", "position"), MISMATCHES)
def test_a_shape_mismatch_is_reported_naming_the_layer_position(document: dict, position: str) -> None:
    assert position in _refusal(document)


@pytest.mark.parametrize(
    ("document", "position"),
    [
        pytest.param(
            {
                "input_shape": [1, 8, 8],
                "num_classes": 10,
                "layers": [
                    {"type": "BatchNorm1d", "num_features": 1},
                    {"type": "Flatten"},
                    {"type": "Linear", "in_features": 64, "out_features": 10},
                ],
            },
            "layer 0 (BatchNorm1d)",
            id="batchnorm1d-on-images",
        ),
        pytest.param(
            {
                "input_shape": [64],
                "num_classes": 10,
                "layers": [
                    {"type": "BatchNorm2d", "num_features": 64},
                    {"type": "Linear", "in_features": 64, "out_features": 10},
                ],
            },
            "layer 0 (BatchNorm2d)",
            id="batchnorm2d-on-vectors",
        ),
    ],
)
def test_a_batchnorm_of_the_wrong_rank_is_reported_naming_the_layer_position(
    document: dict, position: str
) -> None:
    assert position in _refusal(document)


@pytest.mark.parametrize("pool", ["MaxPool2d", "AvgPool2d"])
def test_pooling_a_flat_vector_is_refused_as_invalid_input(pool: str) -> None:
    document = {
        "input_shape": [64],
        "num_classes": 10,
        "layers": [
            {"type": pool, "kernel_size": 2},
            {"type": "Linear", "in_features": 32, "out_features": 10},
        ],
    }

    assert "layer 0" in _refusal(document)


@pytest.mark.parametrize("layer", ["Conv2d", "MaxPool2d", "GlobalAvgPool2d", "GlobalMaxPool2d"])
def test_an_image_layer_given_anything_but_images_says_what_it_takes(layer: str) -> None:
    # Given a layer over images first in a model of 8x8 inputs without a channel axis,
    # which torch itself would read as one unbatched image of 8 channels
    options = {
        "Conv2d": {"in_channels": 8, "out_channels": 8, "kernel_size": 3},
        "MaxPool2d": {"kernel_size": 2},
    }.get(layer, {})
    document = {
        "input_shape": [8, 8],
        "num_classes": 10,
        "layers": [
            {"type": layer, **options},
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 8, "out_features": 10},
        ],
    }

    # Then it is refused, naming the layer and what it takes
    assert f"layer 0 ({layer}) takes images [channels, height, width], not input of shape [8, 8]" in _refusal(
        document
    )


def test_a_spec_accepted_by_the_shape_check_works_at_any_batch_size() -> None:
    # Given a 2-D input fed to a Conv2d expecting 2 channels
    document = {
        "input_shape": [8, 8],
        "num_classes": 10,
        "layers": [
            {"type": "Conv2d", "in_channels": 2, "out_channels": 2, "kernel_size": 3},
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 36, "out_features": 10},
        ],
    }

    # When it is parsed, then either it is refused, or the module it builds works for a real batch
    try:
        spec = parse_architecture(document)
    except InvalidInput:
        return
    assert spec.build()(torch.rand(32, 8, 8)).shape == (32, 10)


@pytest.mark.parametrize(
    ("last_layer", "shown"),
    [
        pytest.param({"type": "Linear", "in_features": 16, "out_features": 9}, "[9]", id="too-few-logits"),
        pytest.param({"type": "Linear", "in_features": 16, "out_features": 11}, "[11]", id="too-many-logits"),
    ],
)
def test_a_last_layer_that_does_not_output_num_classes_is_refused(last_layer: dict, shown: str) -> None:
    document = copy.deepcopy(MLP)
    document["layers"][-1] = last_layer

    message = _refusal(document)

    assert "num_classes is 10" in message
    assert shown in message


CHANNELS_LAST = {
    "input_shape": [8, 8, 1],
    "num_classes": 10,
    "layers": [
        {"type": "Permute", "dims": [3, 1, 2]},
        {"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "Permute", "dims": [2, 3, 1]},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 256, "out_features": 10},
    ],
}


def test_permute_layers_let_a_model_take_channels_last_images() -> None:
    # Given a channels-last model, and the same images laid out channels-first
    module = parse_architecture(CHANNELS_LAST).build()
    channels_first = torch.rand(5, 1, 8, 8)
    channels_last = channels_first.permute(0, 2, 3, 1)

    # Then its convolution sees them channels-first, exactly as a Conv2d applied to them directly
    expected = module[1](channels_first).permute(0, 2, 3, 1).flatten(1)
    torch.testing.assert_close(module[:4](channels_last), expected)
    assert module(channels_last).shape == (5, 10)


@pytest.mark.parametrize(
    ("dims", "problem"),
    [
        pytest.param([1, 1, 2], "must order the axes 1 to 3, each once", id="repeated-axis"),
        pytest.param([0, 1, 2], "must order the axes 1 to 3, each once", id="batch-axis"),
        pytest.param([2, 1], "layer 0 (Permute) cannot take input of shape [8, 8, 1]", id="wrong-rank"),
    ],
)
def test_a_permute_that_is_not_a_reordering_of_the_input_axes_is_refused(dims: list, problem: str) -> None:
    document = copy.deepcopy(CHANNELS_LAST)
    document["layers"][0]["dims"] = dims
    assert problem in _refusal(document)


def test_a_channel_affine_layer_starts_as_the_identity_and_scales_and_shifts_each_channel() -> None:
    # Given a fresh model with a per-channel affine layer over 2-channel images
    document = {
        "input_shape": [2, 4, 4],
        "num_classes": 10,
        "layers": [
            {"type": "ChannelAffine", "num_features": 2},
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 32, "out_features": 10},
        ],
    }
    affine = parse_architecture(document).build()[0]
    images = torch.rand(3, 2, 4, 4)

    # Then it passes images through unchanged, and once set, scales and shifts channel by channel
    torch.testing.assert_close(affine(images), images)
    with torch.no_grad():
        affine.weight.copy_(torch.tensor([2.0, -1.0]))
        affine.bias.copy_(torch.tensor([0.5, 0.0]))
    expected = torch.stack([images[:, 0] * 2.0 + 0.5, -images[:, 1]], dim=1)
    torch.testing.assert_close(affine(images), expected)


def test_an_unflattened_image_output_is_refused_even_with_num_classes_channels() -> None:
    # Given a conv whose output has 10 channels but is still (10, 1, 1) per sample
    document = {
        "input_shape": [1, 8, 8],
        "num_classes": 10,
        "layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 10, "kernel_size": 8}],
    }

    assert "[10, 1, 1]" in _refusal(document)


def test_an_output_with_num_classes_last_but_an_extra_axis_is_refused() -> None:
    # Given a Linear applied to a sequence: each sample yields (3, 10), not 10 logits
    document = {
        "input_shape": [3, 16],
        "num_classes": 10,
        "layers": [{"type": "Linear", "in_features": 16, "out_features": 10}],
    }

    assert "[3, 10]" in _refusal(document)


# -- the parameter limit ---------------------------------------------------------------


def _one_linear(in_features: int, out_features: int, *, bias: bool) -> dict:
    return {
        "input_shape": [in_features],
        "num_classes": out_features,
        "layers": [
            {"type": "Linear", "in_features": in_features, "out_features": out_features, "bias": bias}
        ],
    }


def test_a_model_with_exactly_the_maximum_parameters_passes_validation() -> None:
    # Given 5,000 x 10,000 weights and no bias: exactly the limit
    assert MAX_PARAMETERS == 5_000 * 10_000

    # When it is validated (on meta; it is never built here), then it is accepted
    spec = parse_architecture(_one_linear(5_000, 10_000, bias=False))
    assert spec.num_classes == 10_000


def test_one_parameter_layer_over_the_maximum_is_refused_with_the_count() -> None:
    # The same layer with a bias is 10,000 parameters over the limit
    message = _refusal(_one_linear(5_000, 10_000, bias=True))

    assert "50,010,000 parameters" in message
    assert f"{MAX_PARAMETERS:,}" in message


def test_an_enormous_model_is_refused_without_allocating_it() -> None:
    # Given 64 layers of 65,536 x 65,536: about 1 TiB of float32 if it were ever allocated
    wide = {"type": "Linear", "in_features": 65_536, "out_features": 65_536}
    document = {"input_shape": [65_536], "num_classes": 65_536, "layers": [wide] * 64}

    # When it is parsed, then it is refused (completing at all shows it was never materialised)
    assert "parameters; the limit is" in _refusal(document)


# -- JSON round-trip -------------------------------------------------------------------


@pytest.mark.parametrize("document", [pytest.param(CNN, id="cnn"), pytest.param(MLP, id="mlp")])
def test_a_spec_round_trips_through_json(document: dict) -> None:
    # Given a parsed spec
    spec = _spec(document)

    # When it is dumped to JSON text and read back, both ways
    via_dict = parse_architecture(json.loads(json.dumps(spec.model_dump())))
    via_json = ArchitectureSpec.model_validate_json(spec.model_dump_json())

    # Then it is the same spec, and builds a model with the same weight signature
    assert via_dict == spec
    assert via_json == spec
    assert TensorSignature.of(via_json.build()) == TensorSignature.of(spec.build())


# -- signatures and loading weights ----------------------------------------------------


def test_the_signature_includes_running_statistics_but_not_the_batch_counter() -> None:
    # Given a CNN with a BatchNorm layer
    module = _spec(CNN).build()

    # When its signature is taken
    signature = TensorSignature.of(module)

    # Then BatchNorm's running statistics are shipped but its integer step counter is not
    assert "1.num_batches_tracked" in module.state_dict()
    assert "1.num_batches_tracked" not in signature.shapes
    assert signature.shapes["1.running_mean"] == (8,)
    assert signature.shapes["1.running_var"] == (8,)
    assert signature.shapes["0.weight"] == (8, 1, 3, 3)
    assert signature.shapes["6.weight"] == (10, 128)
    expected_numel = sum(p.numel() for p in module.parameters()) + 2 * 8
    assert signature.nbytes == expected_numel * 4


def test_load_into_accepts_weights_without_the_batch_counter_and_reproduces_the_model() -> None:
    # Given a trained-looking source model and a fresh one built from the same spec
    spec = _spec(CNN)
    source, target = spec.build(), spec.build()
    source.train()
    source(torch.rand(16, 1, 8, 8))  # moves the running statistics
    weights = trainable_state(source)
    assert not any(name.endswith("num_batches_tracked") for name in weights)

    # When the weights are loaded into the fresh model
    load_into(target, weights)

    # Then it computes the same function
    inputs = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(inputs), source.eval()(inputs))


def test_load_into_refuses_weights_missing_a_tensor() -> None:
    module = _spec(CNN).build()
    weights = trainable_state(module)
    del weights["1.running_var"]

    with pytest.raises(InvalidInput, match=r"missing \['1.running_var'\]"):
        load_into(module, weights)


def test_load_into_refuses_an_unexpected_tensor() -> None:
    module = _spec(MLP).build()
    weights = {**trainable_state(module), "99.weight": torch.zeros(1)}

    with pytest.raises(InvalidInput, match=r"unexpected \['99.weight'\]"):
        load_into(module, weights)

"""Model architectures as JSON: a sequence of layers from an allow-list.

A spec is data, never code, so building a model from one cannot execute
anything a user wrote. Shapes are checked on the ``meta`` device before any
memory is allocated.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import nn

from cohort.domain.errors import InvalidInput, describe_validation_error

MAX_PARAMETERS = 50_000_000
MAX_LAYERS = 64

PositiveInt = Annotated[int, Field(ge=1, le=65_536)]
KernelSize = Annotated[int, Field(ge=1, le=31)]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def input_problem(self, shape: torch.Size) -> str | None:
        """Why the layer cannot take a batch of ``shape``, where torch's own message would mislead."""
        return None


class _ImageLayer(_Layer):
    def input_problem(self, shape: torch.Size) -> str | None:
        # torch would read a 3-D input as one unbatched image, its batch axis as channels.
        if len(shape) != 4:
            return f"takes images [channels, height, width], not input of shape {list(shape[1:])}"
        return None


class Linear(_Layer):
    type: Literal["Linear"]
    in_features: PositiveInt
    out_features: PositiveInt
    bias: bool = True

    def build(self) -> nn.Module:
        return nn.Linear(self.in_features, self.out_features, bias=self.bias)


class Conv2d(_ImageLayer):
    type: Literal["Conv2d"]
    in_channels: PositiveInt
    out_channels: PositiveInt
    kernel_size: KernelSize
    stride: Annotated[int, Field(ge=1, le=16)] = 1
    padding: Annotated[int, Field(ge=0, le=16)] = 0
    bias: bool = True

    def build(self) -> nn.Module:
        return nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            bias=self.bias,
        )


class MaxPool2d(_ImageLayer):
    type: Literal["MaxPool2d"]
    kernel_size: KernelSize
    stride: Annotated[int, Field(ge=1, le=16)] | None = None

    def build(self) -> nn.Module:
        return nn.MaxPool2d(self.kernel_size, stride=self.stride)


class AvgPool2d(_ImageLayer):
    type: Literal["AvgPool2d"]
    kernel_size: KernelSize
    stride: Annotated[int, Field(ge=1, le=16)] | None = None

    def build(self) -> nn.Module:
        return nn.AvgPool2d(self.kernel_size, stride=self.stride)


class _GlobalPool(_ImageLayer):
    """Pools each channel of ``[batch, C, H, W]`` to one value, giving ``[batch, C, 1, 1]``."""

    type: Literal["GlobalAvgPool2d", "GlobalMaxPool2d"]

    def build(self) -> nn.Module:
        return nn.AdaptiveAvgPool2d(1) if self.type == "GlobalAvgPool2d" else nn.AdaptiveMaxPool2d(1)


class _BatchNorm(_Layer):
    type: Literal["BatchNorm1d", "BatchNorm2d"]
    num_features: PositiveInt
    eps: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-5  # Keras' default is 1e-3

    def build(self) -> nn.Module:
        kind = nn.BatchNorm1d if self.type == "BatchNorm1d" else nn.BatchNorm2d
        return kind(self.num_features, eps=self.eps)


class PerChannelAffine(nn.Module):
    """``x * weight + bias`` with one weight and bias per channel (axis 1), at any rank."""

    def __init__(self, num_features: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scaled = x * self.weight.view(shape)
        return scaled if self.bias is None else scaled + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{len(self.weight)}, bias={self.bias is not None}"


class ChannelAffine(_Layer):
    """A learned scale and shift per channel, as a BatchNormalization folded by an exporter leaves
    behind (and Keras' Rescaling); starts as the identity."""

    type: Literal["ChannelAffine"]
    num_features: PositiveInt
    bias: bool = True

    def input_problem(self, shape: torch.Size) -> str | None:
        if len(shape) < 2 or shape[1] != self.num_features:
            return f"scales {self.num_features} channels; its input has shape {list(shape[1:])}"
        return None

    def build(self) -> nn.Module:
        return PerChannelAffine(self.num_features, self.bias)


class Dropout(_Layer):
    type: Literal["Dropout"]
    p: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5

    def build(self) -> nn.Module:
        return nn.Dropout(self.p)


class Flatten(_Layer):
    type: Literal["Flatten"]

    def build(self) -> nn.Module:
        return nn.Flatten()


class AxisPermutation(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = (0, *dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims[1:]}"


class Permute(_Layer):
    """Reorders the axes after the batch axis, numbered from 1: ``[3, 1, 2]`` turns channels-last
    images (``[batch, H, W, C]``, as Keras models take them) into channels-first for Conv2d."""

    type: Literal["Permute"]
    dims: Annotated[list[int], Field(min_length=2, max_length=3)]

    @field_validator("dims")
    @classmethod
    def _is_a_permutation(cls, dims: list[int]) -> list[int]:
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"dims {dims} must order the axes 1 to {len(dims)}, each once")
        return dims

    def build(self) -> nn.Module:
        return AxisPermutation(self.dims)


class _Activation(_Layer):
    type: Literal["ReLU", "Tanh", "Sigmoid", "GELU"]

    def build(self) -> nn.Module:
        return {"ReLU": nn.ReLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid, "GELU": nn.GELU}[self.type]()


Layer = Annotated[
    Linear
    | Conv2d
    | MaxPool2d
    | AvgPool2d
    | _GlobalPool
    | _BatchNorm
    | ChannelAffine
    | Dropout
    | Flatten
    | Permute
    | _Activation,
    Field(discriminator="type"),
]


class ArchitectureSpec(BaseModel):
    """A classifier: inputs of ``input_shape`` (without the batch axis) to ``num_classes`` logits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_shape: Annotated[list[PositiveInt], Field(min_length=1, max_length=3)]
    num_classes: Annotated[int, Field(ge=2, le=100_000)]
    layers: Annotated[list[Layer], Field(min_length=1, max_length=MAX_LAYERS)]

    @model_validator(mode="after")
    def _shapes_fit(self) -> ArchitectureSpec:
        with torch.device("meta"):
            module = self._assemble()
            count = sum(p.numel() for p in module.parameters())
            if count > MAX_PARAMETERS:
                raise ValueError(f"the model has {count:,} parameters; the limit is {MAX_PARAMETERS:,}")
            # Two batch sizes, so a batch axis mistaken for a channel axis cannot pass.
            for batch in (2, 3):
                self._check_forward(module, batch)
        return self

    def _check_forward(self, module: nn.Sequential, batch: int) -> None:
        x = torch.empty([batch, *self.input_shape])
        for position, layer in enumerate(module):
            kind = self.layers[position].type
            problem = self.layers[position].input_problem(x.shape)
            if problem:
                raise ValueError(f"layer {position} ({kind}) {problem}")
            try:
                x = layer(x)
            except (RuntimeError, ValueError, IndexError) as exc:
                raise ValueError(
                    f"layer {position} ({kind}) cannot take input of shape {list(x.shape[1:])}: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
        if list(x.shape) != [batch, self.num_classes]:
            raise ValueError(
                f"the model outputs shape {list(x.shape[1:])} per input; num_classes is {self.num_classes}"
            )

    def _assemble(self) -> nn.Sequential:
        return nn.Sequential(*(layer.build() for layer in self.layers))

    def build(self) -> nn.Sequential:
        """A freshly initialised module on the CPU."""
        return self._assemble()


def parse_architecture(document: object) -> ArchitectureSpec:
    """Validate a JSON document as a spec, raising InvalidInput with the first problem."""
    try:
        return ArchitectureSpec.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(f"invalid architecture: {describe_validation_error(exc)}") from None

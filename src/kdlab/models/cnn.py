"""K same-shaped small CNNs for colour images, parameters stacked along a leading model axis.

Each stage is a 3x3 convolution (padding 1), ReLU and 2x2 max-pooling; after the last stage a
global average pool, dropout and a linear layer give the logits. There is no batch
normalisation: batch statistics would couple the images of a batch in ways that depend on the
group, and a model trained inside a group must get the same numbers as alone.

The parameters are stacked like StackedMLP's, but the convolutions run one model at a time:
on the CPU a loop of per-model convolutions in channels_last memory measured faster than one
grouped convolution over all K (bench/bench_cnn.py), so a group saves no time per model here.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from kdlab.models.stacked import StackedModule, uniform_fan_in_

KERNEL = 3  # the default CIFAR-10 widths are settings: kdlab.settings.study.DEFAULT_WIDTHS


class StackedCNN(StackedModule):
    """CNNs `sizes = (C*H*W, width_1, ..., width_n, classes)`: one conv stage per width.

    Inputs are flattened channel-major images [K, B, C*H*W], as the data sets store them.
    Dropout `dropout` acts on the pooled features before the classifier, where a mask per
    feature makes sense; the conv stages, whose neighbouring pixels are strongly correlated,
    have none.
    """

    memory_format = torch.channels_last  # of the activations

    eval_chunk = 1024  # conv activations of a chunk: about 0.25 GB for the default teacher

    def __init__(
        self,
        sizes: tuple[int, ...],
        num_models: int,
        dropout: float = 0.0,
        device: torch.device | str = "cpu",
        image_shape: tuple[int, int, int] = (3, 32, 32),
        input_dropout: float = 0.0,
    ):
        super().__init__()
        if len(sizes) < 3 or sizes[0] != math.prod(image_shape):
            raise ValueError(f"sizes {sizes} must start with C*H*W of {image_shape} and name a stage")
        self.sizes = tuple(sizes)
        self.num_models = num_models
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.image_shape = tuple(image_shape)
        channels = (image_shape[0], *sizes[1:-1])
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(num_models, c_out, c_in, KERNEL, KERNEL, device=device))
            for c_in, c_out in itertools.pairwise(channels)
        )
        self.weights.append(nn.Parameter(torch.empty(num_models, channels[-1], sizes[-1], device=device)))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(num_models, c_out, device=device)) for c_out in channels[1:]
        )
        self.biases.append(nn.Parameter(torch.empty(num_models, 1, sizes[-1], device=device)))

    @torch.no_grad()
    def reset_parameters(self, generators: list[torch.Generator]) -> None:
        """PyTorch's nn.Conv2d / nn.Linear initialisation, U(±1/sqrt(fan_in)), per model."""
        for k, gen in enumerate(generators):
            for w, b in zip(self.weights, self.biases):
                fan_in = w[k, 0].numel() if w.dim() == 5 else w.shape[1]  # conv: in*3*3
                uniform_fan_in_(w[k], fan_in, gen)
                uniform_fan_in_(b[k], fan_in, gen)

    def forward(self, x: torch.Tensor, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """Logits [K, B, classes] for inputs [K, B, C*H*W]; dropout is on when `generators` are given."""
        features = self.features(self._drop_inputs(x, generators))
        if generators is not None and self.dropout > 0:
            features = features * self._dropout_mask(features, generators, self.dropout)
        return torch.baddbmm(self.biases[-1], features, self.weights[-1])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features [K, B, width_n], one model at a time.

        A loop of per-model convolutions on channels_last activations (the layout oneDNN
        convolves without reordering) measured faster on the CPU than one grouped convolution
        over all K models (bench/bench_cnn.py)."""
        outputs = []
        for k in range(len(x)):
            h = x[k].reshape(-1, *self.image_shape).contiguous(memory_format=self.memory_format)
            for w, bias in zip(self.weights[:-1], self.biases[:-1]):
                h = F.max_pool2d(torch.relu(F.conv2d(h, w[k], bias[k], padding=KERNEL // 2)), 2)
            outputs.append(h.mean((2, 3)))
        return torch.stack(outputs)

    def state_of(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's parameters as a flat dict for saving: conv stages w{i}: [out, in, 3, 3] and
        b{i}: [out], then the classifier w{n}: [width_n, classes] and b{n}: [classes] (the output
        bias is the highest-numbered b)."""
        state = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            state[f"w{i}"] = w[k].detach().clone().contiguous()
            state[f"b{i}"] = b[k].detach().reshape(-1).clone()
        return state

    @torch.no_grad()
    def load_state_into(self, k: int, state: dict[str, torch.Tensor]) -> None:
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            w[k].copy_(state[f"w{i}"])
            b[k].copy_(state[f"b{i}"].view(b[k].shape))

"""Feed-forward classifiers built from a recipe: an MLP and a small CNN, both returning logits.

Both take the flat feature vector (batch, inputs); the CNN views it as an image
(batch, channels, height, width) first, so every model of the kit has the same
input layout and the compiler sees the reshape like any other op.
"""

from __future__ import annotations

from torch import nn


def mlp(inputs: int, layers: tuple[int, ...], outputs: int) -> nn.Sequential:
    """Linear + ReLU per hidden width, then a linear read-out to the logits."""
    modules: list[nn.Module] = []
    width = inputs
    for hidden in layers:
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, outputs))
    return nn.Sequential(*modules)


class CNN(nn.Module):
    """3x3 convolutions (padding 1) + ReLU, max-pooling 2x2 after each but the last, which is followed by a
    2x2 average pool; then flatten and a linear read-out."""

    def __init__(self, image: tuple[int, int, int], layers: tuple[int, ...], outputs: int):
        super().__init__()
        self.image = image
        channels, height, width = image
        blocks: list[nn.Module] = []
        for i, out in enumerate(layers):
            blocks += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU()]
            blocks.append(nn.MaxPool2d(2) if i + 1 < len(layers) else nn.AvgPool2d(2))
            channels, height, width = out, height // 2, width // 2
        self.features = nn.Sequential(*blocks)
        self.readout = nn.Linear(channels * height * width, outputs)

    def forward(self, x):
        x = x.view(x.shape[0], *self.image)
        return self.readout(self.features(x).flatten(1))

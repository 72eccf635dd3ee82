"""``cnn8``: the paper's "custom 8-layer CNN" over log-Mel spectrograms (appendix A.2).

The paper gives no architecture beyond "8-layer CNN"; this one is ours, in the style of the
audio-tagging CNNs of the field (VGG-like pairs of 3x3 convolutions):

    4 blocks x [Conv3x3 -> BatchNorm -> ReLU -> Conv3x3 -> BatchNorm -> ReLU] -> MaxPool 2x2

Channels ``w, w, 2w, 2w, 4w, 4w, 8w, 8w`` for ``width = w`` (8 convolution layers); every conv
has zero padding 1 and no bias (BatchNorm follows). Each block halves frequency and time with
ceil-mode max pooling, so a clip of L valid frames keeps ``ceil(L / 16)`` >= 1 time steps
(with the masking of :mod:`mmml_audio_mel.masking`, the exact per-layer formula gives the same).

Input ``(B, 1, mels, T)``, output ``(B, 8w, ceil(mels/16), ceil(T/16))``.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["CNN8"]


class CNN8(nn.Module):
    """Eight 3x3 conv layers in four pooled blocks (see the module docstring)."""

    def __init__(self, width: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        prev = in_channels
        for w in widths:
            for _ in range(2):
                layers += [
                    nn.Conv2d(prev, w, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(),
                ]
                prev = w
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        self.layers = nn.Sequential(*layers)
        self.out_channels = prev

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)  # (B, 1, M, T) -> (B, 8w, M/16, T/16)

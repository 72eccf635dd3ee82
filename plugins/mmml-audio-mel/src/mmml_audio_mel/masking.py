"""Exact time masks through a 2-D CNN, so padding never changes a clip's valid outputs.

The Mel encoder runs a CNN over ``(B, 1, mels, T)`` spectrograms that are padded in time to
the longest clip of the batch. A clip's outputs on its own valid frames are made identical to
running it alone by four rules, applied with hooks to every time-mixing layer of a backbone
(our ``cnn8`` or a timm ResNet, unchanged otherwise):

1. Before every ``Conv2d`` and ``AvgPool2d`` the positions at or beyond the valid length are set
   to 0. Alone, a convolution reads zeros there too (its zero padding), so the outputs on the
   positions the clip alone would have are the same.
2. Before every ``MaxPool2d`` they are set to -inf: alone, max pooling ignores out-of-range
   positions (its padding is -inf, and ceil-mode windows are clipped to the input).
3. After every such layer the valid length of the output is computed with the layer's own
   output-length formula applied to the input's valid length (below), and positions beyond it
   are set to 0 (so no -inf or padding value travels on, e.g. through a residual addition).
4. ``BatchNorm2d`` layers are replaced by :class:`MaskedBatchNorm2d`: in training, batch
   statistics are computed over valid positions only (in evaluation BatchNorm is position-wise
   anyway). State-dict keys are unchanged.

Output length of a layer with kernel k, stride s, padding p, dilation d along time, for an input
of valid length L (PyTorch's own formulas):

- floor mode: ``L' = floor((L + 2p - d(k-1) - 1) / s) + 1``
- ceil mode: ``L' = ceil((L + 2p - d(k-1) - 1) / s) + 1``, minus 1 when the last window would
  start in the right padding (``(L'-1) s >= L + p``).

Every other layer a backbone contains must be position-wise (ReLU, BatchNorm in evaluation,
residual additions, identity); :func:`install` refuses unknown module types rather than claim
an invariance it cannot check. The same formula is checked against the padded tensor's real
output size on every call, so a wrong formula fails loudly.

The valid lengths of one forward pass are kept per padded time size (all tensors of one time
resolution share them); they live in a :class:`TimeLengths` tracker the hooks read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "POSITIONWISE_MODULES",
    "MaskedBatchNorm2d",
    "TimeLengths",
    "install",
    "output_length",
]

#: module types that mix no time positions (checked by name, so timm's containers qualify)
POSITIONWISE_MODULES: frozenset[str] = frozenset(
    {
        "Sequential",
        "ModuleList",
        "Identity",
        "ReLU",
        "GELU",
        "SiLU",
        "Dropout",
        "Flatten",
        "ResNet",
        "BasicBlock",
        "Bottleneck",
        "SelectAdaptivePool2d",
        "CNN8",
    }
)


def _pair_last(value: Any) -> int:
    """The time (last) component of a conv/pool hyper-parameter."""
    return int(value[-1]) if isinstance(value, (tuple, list)) else int(value)


def output_length(
    length: Tensor | int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> Tensor | int:
    """Valid output length of a conv/pool layer along one axis (formulas above)."""
    span = length + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -((-span) // stride) + 1  # ceil division
    if isinstance(out, Tensor):
        return out - ((out - 1) * stride >= length + padding).to(out.dtype)
    return out - 1 if (out - 1) * stride >= length + padding else out


class TimeLengths:
    """Valid lengths ``(B,)`` per padded time size during one forward pass."""

    def __init__(self) -> None:
        self._by_size: dict[int, Tensor] | None = None

    @contextmanager
    def track(self, lengths: Tensor, size: int) -> Iterator[TimeLengths]:
        """Within the block, hooks mask tensors of time size ``size`` to ``lengths``."""
        if self._by_size is not None:
            raise RuntimeError("TimeLengths.track is not re-entrant")
        self._by_size = {int(size): lengths}
        try:
            yield self
        finally:
            self._by_size = None

    @property
    def active(self) -> bool:
        return self._by_size is not None

    def lengths(self, size: int) -> Tensor:
        if self._by_size is None:
            raise RuntimeError("no tracking pass is active")
        try:
            return self._by_size[int(size)]
        except KeyError:
            raise RuntimeError(
                f"a layer received time size {size}, but only sizes {sorted(self._by_size)} have "
                "known valid lengths: the backbone has a time-mixing layer masking cannot follow"
            ) from None

    def keep(self, x: Tensor) -> Tensor:
        """Bool mask broadcastable to ``x`` (..., T): True on valid time positions."""
        size = x.shape[-1]
        lengths = self.lengths(size)
        keep = torch.arange(size, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        return keep.view(keep.shape[0], *([1] * (x.dim() - 2)), size)  # (B, 1.., T)

    # hooks (bound methods, so a module holding them still pickles) ------------------------
    def fill_zero(self, module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
        if not self.active:
            return None
        x = args[0]
        return (x.masked_fill(~self.keep(x), 0.0), *args[1:])

    def fill_neg_inf(
        self, module: nn.Module, args: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...] | None:
        if not self.active:
            return None
        x = args[0]
        return (x.masked_fill(~self.keep(x), float("-inf")), *args[1:])

    def propagate(
        self, module: nn.Module, args: tuple[Tensor, ...], output: Tensor
    ) -> Tensor | None:
        if not self.active:
            return None
        size_in = args[0].shape[-1]
        k = _pair_last(module.kernel_size)
        s = _pair_last(module.stride if module.stride is not None else module.kernel_size)
        p = _pair_last(module.padding)
        d = _pair_last(getattr(module, "dilation", 1))
        ceil = bool(getattr(module, "ceil_mode", False))
        expected = output_length(size_in, k, s, p, d, ceil)
        if expected != output.shape[-1]:
            raise RuntimeError(
                f"{type(module).__name__}: time size {size_in} -> {output.shape[-1]}, but its "
                f"output-length formula gives {expected}"
            )
        assert self._by_size is not None
        self._by_size.setdefault(
            int(output.shape[-1]), output_length(self.lengths(size_in), k, s, p, d, ceil)
        )
        return output.masked_fill(~self.keep(output), 0.0)


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics ignore padded time positions.

    Outside a tracking pass, or in evaluation, it is plain ``BatchNorm2d``.
    """

    def __init__(self, *args: Any, tracker: TimeLengths | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = tracker

    def forward(self, x: Tensor) -> Tensor:
        tracker = self.tracker
        if not (self.training and tracker is not None and tracker.active):
            return super().forward(x)
        keep = tracker.keep(x).to(torch.float32)  # (B, 1, 1, T)
        xf = x.float()
        count = keep.sum() * x.shape[2]  # valid positions per channel
        mean = (xf * keep).sum(dim=(0, 2, 3)) / count  # (C,)
        centred = (xf - mean[None, :, None, None]) * keep
        var = centred.pow(2).sum(dim=(0, 2, 3)) / count  # (C,) biased, used to normalise
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else self.momentum
                )
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(unbiased, momentum)
        y = (xf - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def _swap_batchnorm(module: nn.Module, tracker: TimeLengths) -> None:
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            masked = MaskedBatchNorm2d(
                child.num_features,
                eps=child.eps,
                momentum=child.momentum,
                affine=child.affine,
                track_running_stats=child.track_running_stats,
                tracker=tracker,
            )
            masked.load_state_dict(child.state_dict())
            setattr(module, name, masked)
        else:
            _swap_batchnorm(child, tracker)


def install(backbone: nn.Module, tracker: TimeLengths) -> None:
    """Add the masking hooks of the module docstring to every layer of ``backbone``."""
    _swap_batchnorm(backbone, tracker)
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise ValueError(f"masking needs numeric zero padding, got {module}")
            module.register_forward_pre_hook(tracker.fill_zero)
            module.register_forward_hook(tracker.propagate)
        elif isinstance(module, nn.MaxPool2d):
            module.register_forward_pre_hook(tracker.fill_neg_inf)
            module.register_forward_hook(tracker.propagate)
        elif isinstance(module, nn.AvgPool2d):
            if module.ceil_mode or (_pair_last(module.padding) and not module.count_include_pad):
                raise ValueError(f"masking cannot make {module} padding invariant")
            module.register_forward_pre_hook(tracker.fill_zero)
            module.register_forward_hook(tracker.propagate)
        elif isinstance(module, MaskedBatchNorm2d):
            continue
        elif type(module).__name__ not in POSITIONWISE_MODULES:
            raise ValueError(
                f"cannot vouch for padding invariance through {type(module).__name__}; "
                f"known position-wise modules: {sorted(POSITIONWISE_MODULES)}"
            )

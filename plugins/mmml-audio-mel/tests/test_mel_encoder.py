"""Tests of the ``mel`` encoder: contract, frames and masks, exact padding invariance,
masked BatchNorm, normalisation statistics, the timm backbones."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torchaudio
from mmml_audio_mel.masking import MaskedBatchNorm2d, TimeLengths, install, output_length
from torch import nn

from mmml_core import registry
from mmml_core.config import ConfigError
from mmml_core.interfaces import config_dict
from mmml_core.testing import EncoderContract

SR = 16000


def noise(seconds: float, seed: int = 0, level: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(SR * seconds))) / SR
    wave = level * np.sin(2 * np.pi * (150 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


class TestMelContract(EncoderContract):
    """cnn8 passes the contract with the default padding tolerance (1e-5): the masking of
    :mod:`mmml_audio_mel.masking` makes padding exact, not approximately harmless."""

    name = "mel"


def test_frames_and_masks() -> None:
    """60 ms windows every 20 ms without centring: 1 + (N - 1024) // 320 frames."""
    enc = registry.create("encoder", "mel", backbone="cnn8", n_mels=32, width=4)
    items = [noise(2.0), noise(0.5, 1), noise(0.01, 2)]
    batch = enc.preprocess(items)
    assert batch["mel"].shape == (3, 32, 97)
    assert batch["mask"].sum(dim=1).tolist() == [97, 1 + (8000 - 1024) // 320, 1]
    # each clip's valid frames equal an independent torchaudio computation on the clip alone
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=1024, win_length=960, hop_length=320, n_mels=32, center=False
    )
    alone = 10 * torch.log10(mel(torch.from_numpy(items[1])).clamp(min=1e-10))  # (32, 22)
    torch.testing.assert_close(batch["mel"][1, :, :22], alone, rtol=0, atol=1e-4)
    assert batch["mel"][1, :, 22:].abs().sum() == 0
    enc.fit(items)
    out = enc.eval()(batch)
    assert out.mask.sum(dim=1).tolist() == [math.ceil(97 / 16), math.ceil(22 / 16), 1]


@pytest.mark.parametrize("length", [1, 2, 5, 16, 17, 51, 97, 300])
def test_output_length_formula_matches_pytorch(length: int) -> None:
    x = torch.zeros(1, 1, 4, length)
    layers = [
        nn.Conv2d(1, 1, 7, stride=2, padding=3),
        nn.Conv2d(1, 1, 3, padding=1),
        nn.Conv2d(1, 1, 1, stride=2),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.MaxPool2d(2, stride=2, ceil_mode=True),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.Conv2d(1, 1, 3, stride=2, padding=2, dilation=2),
    ]
    for layer in layers:
        if (
            length < 3
            and isinstance(layer, nn.MaxPool2d)
            and layer.padding == 0
            and layer.kernel_size == 3
        ):
            continue  # the window would not fit; PyTorch raises
        k = layer.kernel_size[-1] if isinstance(layer.kernel_size, tuple) else layer.kernel_size
        s = layer.stride[-1] if isinstance(layer.stride, tuple) else layer.stride
        p = layer.padding[-1] if isinstance(layer.padding, tuple) else layer.padding
        d = layer.dilation[-1] if isinstance(layer.dilation, tuple) else layer.dilation
        got = output_length(length, k, s, p, d, getattr(layer, "ceil_mode", False))
        assert got == layer(x).shape[-1], layer
        as_tensor = output_length(
            torch.tensor([length]), k, s, p, d, getattr(layer, "ceil_mode", False)
        )
        assert int(as_tensor[0]) == got


def _trained_like(enc: nn.Module, seed: int = 1) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters.

    At initialisation timm zeroes the last BatchNorm weight of each residual block, which hides
    padding leaks; a trained network has no such luck.
    """
    g = torch.Generator().manual_seed(seed)
    for m in enc.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g))


@pytest.mark.parametrize("backbone", ["cnn8", "resnet18"])
def test_padding_invariance_is_exact_and_needs_the_masks(backbone: str) -> None:
    torch.manual_seed(0)
    enc = registry.create("encoder", "mel", backbone=backbone, n_mels=32, width=4)
    short, long = noise(1.3, 1), noise(3.0, 2)
    enc.fit([short, long])
    _trained_like(enc)
    enc.eval()
    with torch.no_grad():
        alone = enc(enc.preprocess([short]))
        batch = enc(enc.preprocess([short, long]))
        n = int(alone.mask[0].sum())
        assert n >= 2 and int(batch.mask[0].sum()) == n
        # float rounding only: different padded widths pick different conv kernels, and the
        # 18 layers of a ResNet with BatchNorm gains > 1 accumulate it (values reach ~10)
        tol = 5e-6 * float(alone.hidden.abs().max()) + 1e-6
        torch.testing.assert_close(batch.hidden[0, :n], alone.hidden[0, :n], rtol=0, atol=tol)
        torch.testing.assert_close(batch.pooled[0], alone.pooled[0], rtol=0, atol=tol)

        # the same backbone without the masking pass (hooks inactive) leaks padding
        def unmasked(inputs: dict) -> torch.Tensor:
            x = (inputs["mel"] - enc.mel_mean[:, None]) / enc.mel_std[:, None]
            x = x.masked_fill(~inputs["mask"][:, None, :], 0.0)
            return enc.backbone(x[:, None]).mean(dim=2)  # (B, C, T')

        leak = (
            unmasked(enc.preprocess([short, long]))[0, :, :n]
            - unmasked(enc.preprocess([short]))[0, :, :n]
        )
        assert leak.abs().max() > 100 * tol, (float(leak.abs().max()), tol)


def test_masked_batchnorm_uses_valid_positions_only() -> None:
    torch.manual_seed(0)
    tracker = TimeLengths()
    bn = MaskedBatchNorm2d(3, tracker=tracker).train()
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 3, 4, 6)
    lengths = torch.tensor([6, 2])
    x[1, :, :, 2:] = 100.0  # padding garbage
    with tracker.track(lengths, 6):
        y = bn(x)
    # reference: plain batch norm over the valid columns only
    valid = torch.cat([x[0].reshape(3, -1), x[1, :, :, :2].reshape(3, -1)], dim=1)  # (C, n)
    mean, var = valid.mean(dim=1), valid.var(dim=1, unbiased=False)
    ref = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + bn.eps)
    ref = ref * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]
    torch.testing.assert_close(y[0], ref[0])
    torch.testing.assert_close(y[1, :, :, :2], ref[1, :, :, :2])
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * valid.var(dim=1, unbiased=True))


def test_install_refuses_layers_it_cannot_vouch_for() -> None:
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d"):
        install(
            nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1)), TimeLengths()
        )
    with pytest.raises(ValueError, match="zero padding"):
        install(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), TimeLengths())


def test_normalisation_statistics_fit_on_train_and_saved() -> None:
    train = [noise(0.8, 1), noise(1.6, 2), noise(0.4, 3, level=0.05)]
    torch.manual_seed(0)
    enc = registry.create("encoder", "mel", backbone="cnn8", n_mels=32, width=4).eval()
    with pytest.raises(RuntimeError, match="fit"):
        enc(enc.preprocess(train))
    enc.fit(train)
    # independent computation: every frame of every clip alone, per Mel bin
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=1024, win_length=960, hop_length=320, n_mels=32, center=False
    )
    frames = torch.cat(
        [10 * torch.log10(mel(torch.from_numpy(w)).clamp(min=1e-10)).T for w in train]
    ).double()  # (frames, 32)
    torch.testing.assert_close(enc.mel_mean, frames.mean(0).float(), rtol=0, atol=1e-3)
    torch.testing.assert_close(
        enc.mel_std, frames.std(0, unbiased=False).float(), rtol=1e-4, atol=1e-3
    )
    assert int(enc.fit_frames) == frames.shape[0]
    state = enc.state_dict()
    assert {"mel_mean", "mel_std", "fit_frames"} <= set(state)

    again = registry.create("encoder", "mel", **config_dict(enc)).eval()
    again.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(
            again(again.preprocess(train)).pooled, enc(enc.preprocess(train)).pooled, rtol=0, atol=0
        )


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34"])
def test_timm_resnets_take_one_channel(backbone: str) -> None:
    enc = registry.create("encoder", "mel", backbone=backbone, n_mels=32)
    assert enc.backbone.conv1.in_channels == 1
    assert enc.dim == 512
    items = [noise(1.0, 1), noise(2.0, 2)]
    enc.fit(items)
    out = enc.train()(enc.preprocess(items))
    frames = [1 + (w.size - 1024) // 320 for w in items]  # 47, 97
    assert out.mask.sum(dim=1).tolist() == [math.ceil(f / 32) for f in frames]  # 2, 4
    assert out.hidden.shape == (2, 4, 512) and out.pooled.shape == (2, 512)
    out.pooled.sum().backward()
    assert enc.backbone.conv1.weight.grad is not None


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="backbone"):
        registry.create("encoder", "mel", backbone="vgg16")
    with pytest.raises(ConfigError, match="n_fft"):
        registry.create("encoder", "mel", window_seconds=0.1)


def test_encoder_pickles_for_spawned_workers() -> None:
    enc = registry.create("encoder", "mel", n_mels=32, width=4)
    enc.fit([noise(0.5)])
    clone = pickle.loads(pickle.dumps(enc)).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            clone(clone.preprocess([noise(0.7, 3)])).pooled,
            enc.eval()(enc.preprocess([noise(0.7, 3)])).pooled,
        )

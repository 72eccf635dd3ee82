"""The model assembly end to end (docs/architecture.md): tiny models built from registry names train
on random data with a learnable signal, for every fusion, with single- and multi-loss; one
modality alone predicts through its subnet head; a text-only model works.

The encoders are small but real ``FeatureEncoder`` subclasses defined here (raw strings and
waveforms in, ``EncoderOutput`` out), registered by hand for this module only.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fake_dists import FIRST_PARTY
from torch import Tensor, nn

from mmml_core import registry
from mmml_core.interfaces import EncoderOutput, FeatureEncoder
from mmml_core.model import ModelSpec, build_model
from mmml_core.testing import EncoderContract

pytestmark = pytest.mark.plugins(*FIRST_PARTY)

SAMPLE_RATE = 16000


@dataclass
class BagTextConfig:
    vocab: int = 97  # hashed word ids; prime, so crc32 buckets spread evenly
    dim: int = 16  # tiny width for fast tests


class BagTextEncoder(FeatureEncoder):
    """Words hashed to ids -> embedding -> tanh(linear); pooled = masked mean."""

    Config = BagTextConfig
    modality = "text"

    def __init__(self, config: BagTextConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab, config.dim)
        self.mix = nn.Linear(config.dim, config.dim)

    @property
    def dim(self) -> int:
        return self.config.dim

    def preprocess(self, items: Sequence[str]) -> dict[str, Tensor]:
        ids = [
            [zlib.crc32(w.encode()) % self.config.vocab for w in s.split()] or [0] for s in items
        ]
        T = max(len(x) for x in ids)
        out = torch.zeros(len(ids), T, dtype=torch.long)  # (B, T)
        mask = torch.zeros(len(ids), T, dtype=torch.bool)  # (B, T)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = True
        return {"ids": out, "mask": mask}

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        mask = inputs["mask"]  # (B, T)
        hidden = torch.tanh(self.mix(self.embed(inputs["ids"])))  # (B, T, D)
        w = mask[..., None].to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * w).sum(1) / w.sum(1)  # (B, D)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)


@dataclass
class ConvAudioConfig:
    dim: int = 16  # tiny width for fast tests
    kernel: int = 64  # 4 ms frames at 16 kHz
    stride: int = 32  # 2 ms hop: a few dozen frames for the short test clips


class ConvAudioEncoder(FeatureEncoder):
    """One strided conv over the waveform -> ReLU -> linear; pooled = masked mean.
    The frame mask comes from the conv's output-length formula."""

    Config = ConvAudioConfig
    modality = "audio"

    def __init__(self, config: ConvAudioConfig) -> None:
        super().__init__(config)
        self.conv = nn.Conv1d(1, config.dim, config.kernel, stride=config.stride)
        self.out = nn.Linear(config.dim, config.dim)

    @property
    def dim(self) -> int:
        return self.config.dim

    def preprocess(self, items: Sequence[np.ndarray]) -> dict[str, Tensor]:
        S = max(max(len(x) for x in items), self.config.kernel)
        wave = torch.zeros(len(items), S)  # (B, S), zero padded
        for i, x in enumerate(items):
            wave[i, : len(x)] = torch.from_numpy(np.asarray(x, dtype=np.float32))
        lengths = torch.tensor([max(len(x), self.config.kernel) for x in items])  # (B,)
        return {"wave": wave, "lengths": lengths}

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        c = self.config
        frames = F.relu(self.conv(inputs["wave"][:, None, :]))  # (B, D, T)
        hidden = self.out(frames.transpose(1, 2))  # (B, T, D)
        valid = (inputs["lengths"] - c.kernel) // c.stride + 1  # (B,) conv output lengths
        mask = torch.arange(hidden.shape[1])[None, :] < valid[:, None]  # (B, T)
        w = mask[..., None].to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * w).sum(1) / w.sum(1)  # (B, D)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from intra-op threads; on a busy shared machine the
    threads' spin-waits made this module ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def test_encoders():
    registry.reset()
    registry.register("encoder", "test_text", BagTextEncoder)
    registry.register("encoder", "test_audio", ConvAudioEncoder)
    yield
    registry.reset()


class TestBagTextEncoderContract(EncoderContract):
    """The test encoders obey the encoder contract themselves (so the tests below are fair)."""

    name = "test_text"


class TestConvAudioEncoderContract(EncoderContract):
    name = "test_audio"


# ---------------------------------------------------------------------------------- data

WORDS = [f"w{i}" for i in range(40)]


def make_data(n: int, seed: int) -> tuple[dict[str, list[Any]], dict[str, Tensor]]:
    """Text whose words carry a hidden score (label_T = mean word score) and audio whose
    amplitude carries label_A; the fused label is their mean."""
    rng = np.random.default_rng(seed)
    scores = np.random.default_rng(1234).uniform(-1, 1, len(WORDS))  # fixed word lexicon
    texts, audios, label_t, label_a = [], [], [], []
    for _ in range(n):
        idx = rng.integers(0, len(WORDS), rng.integers(3, 9))
        texts.append(" ".join(WORDS[i] for i in idx))
        label_t.append(scores[idx].mean())
        a = rng.uniform(-1, 1)
        t = np.arange(rng.integers(400, 900)) / SAMPLE_RATE
        amp = 0.5 + 0.4 * a
        wave = amp * np.sin(2 * np.pi * rng.uniform(200, 400) * t) + 0.02 * rng.standard_normal(
            t.size
        )
        audios.append(wave.astype(np.float32))
        label_a.append(a)
    lt = torch.tensor(label_t, dtype=torch.float32)
    la = torch.tensor(label_a, dtype=torch.float32)
    return {"text": texts, "audio": audios}, {"M": (lt + la) / 2, "T": lt, "A": la}


TEXT = {"name": "test_text", "config": {"dim": 16}}
AUDIO = {"name": "test_audio", "config": {"dim": 16}}
TINY_HEAD = {"name": "mlp", "config": {"hidden": 32, "hidden2": 16}}
FUSIONS = {
    "concat": {"name": "concat"},
    "cross_attn": {"name": "cross_attn", "config": {"heads": 2, "layers": 2}},
    "cross_attn-concat": {
        "name": "cross_attn",
        "config": {"heads": 2, "layers": 1, "variant": "concat"},
    },
    "cross_attn-transformer-mean": {
        "name": "cross_attn",
        "config": {"heads": 2, "layers": 1, "variant": "transformer", "variant_layers": 1},
    },
    "cross_attn-transformer-cls": {
        "name": "cross_attn",
        "config": {
            "heads": 2,
            "layers": 1,
            "variant": "transformer",
            "variant_layers": 1,
            "transformer_pool": "cls",
        },
    },
    "cross_attn-projected": {  # audio narrower than text: the fusion projects
        "name": "cross_attn",
        "config": {"heads": 2, "layers": 1},
    },
    "tfn": {"name": "tfn", "config": {"proj_dim": 8, "hidden": 32}},
}
LOSSES = {"single": {"M": 1.0}, "multi": {"M": 1.0, "T": 1.0, "A": 1.0}}


def train(
    model: nn.Module,
    loss: nn.Module,
    raw: dict[str, list[Any]],
    targets: dict[str, Tensor],
    steps: int,
    lr: float = 3e-3,
) -> tuple[dict, dict]:
    """Full-batch AdamW; returns the per-head eval losses before and after training."""
    inputs = model.preprocess(raw)

    def evaluate() -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            _, parts = loss(model(inputs), targets)
        model.train()
        return {h: float(v) for h, v in parts.items()}

    before = evaluate()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        total, _ = loss(model(inputs), targets)
        opt.zero_grad()
        total.backward()
        opt.step()
    return before, evaluate()


@pytest.mark.parametrize("loss_kind", list(LOSSES))
@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_tiny_model_learns(fusion: str, loss_kind: str) -> None:
    torch.manual_seed(0)
    audio = {"name": "test_audio", "config": {"dim": 8}} if fusion.endswith("projected") else AUDIO
    spec = ModelSpec(
        encoders={"text": TEXT, "audio": audio}, fusion=FUSIONS[fusion], head=TINY_HEAD
    )
    model = build_model(spec)
    assert set(model.subnet_heads) == {"text", "audio"}
    weights = LOSSES[loss_kind]
    loss = registry.create("loss", "l1", weights=weights)
    raw, targets = make_data(48, seed=0)

    fusion_before = [p.detach().clone() for p in model.fusion.parameters()]
    before, after = train(model, loss, raw, targets, steps=40)
    assert set(after) == set(weights)
    for head in weights:
        assert after[head] < 0.7 * before[head], (head, before, after)
    # the fusion itself trained (concat has no parameters)
    changed = [
        not torch.equal(a, b) for a, b in zip(fusion_before, model.fusion.parameters(), strict=True)
    ]
    assert all(changed)
    if loss_kind == "single":  # no gradient ever reached the subnet heads
        assert all(p.grad is None for p in model.subnet_heads.parameters())


def test_one_modality_predicts_through_its_subnet_head() -> None:
    torch.manual_seed(0)
    model = build_model(
        ModelSpec(
            encoders={"text": TEXT, "audio": AUDIO}, fusion=FUSIONS["cross_attn"], head=TINY_HEAD
        )
    ).eval()
    raw, _ = make_data(5, seed=1)
    full = model.preprocess(raw)
    with torch.no_grad():
        both = model(full)
        text_only = model({"text": full["text"]})
        audio_only = model({"audio": full["audio"]})
    assert set(both) == {"M", "T", "A"} and all(v.shape == (5,) for v in both.values())
    assert set(text_only) == {"T"} and set(audio_only) == {"A"}
    # the subnet heads do not depend on the other modality
    torch.testing.assert_close(text_only["T"], both["T"])
    torch.testing.assert_close(audio_only["A"], both["A"])


def test_fused_head_only_model_cannot_predict_from_one_modality() -> None:
    model = build_model(
        ModelSpec(
            encoders={"text": TEXT, "audio": AUDIO},
            fusion=FUSIONS["concat"],
            head=TINY_HEAD,
            heads=("M",),
        )
    )
    assert len(model.subnet_heads) == 0
    raw, _ = make_data(3, seed=2)
    with pytest.raises(ValueError, match="no head can predict"):
        model({"text": model.preprocess({"text": raw["text"]})["text"]})


def test_text_only_model_learns() -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec(encoders={"text": TEXT}))
    assert model.fusion is None and model.head is None and model.spec.heads == ("T",)
    loss = registry.create("loss", "l1")  # default multi-loss weights: only T exists
    raw, targets = make_data(48, seed=0)
    before, after = train(model, loss, {"text": raw["text"]}, targets, steps=40)
    assert set(after) == {"T"} and after["T"] < 0.7 * before["T"]


def test_resolved_spec_rebuilds_the_same_model() -> None:
    """What a checkpoint stores (the resolved spec as JSON-able dict + state dict) rebuilds a
    model with identical predictions."""
    torch.manual_seed(0)
    spec = ModelSpec(
        encoders={"text": TEXT, "audio": AUDIO},
        fusion=FUSIONS["cross_attn-transformer-cls"],
        head=TINY_HEAD,
    )
    model = build_model(spec).eval()
    again = build_model(model.resolved_spec().to_dict()).eval()
    again.load_state_dict(model.state_dict())
    raw, _ = make_data(4, seed=3)
    inputs = model.preprocess(raw)
    with torch.no_grad():
        a, b = model(inputs), again(inputs)
    assert set(a) == set(b) == {"M", "T", "A"}
    for h in a:
        torch.testing.assert_close(a[h], b[h], atol=0, rtol=0)

"""Contract tests every component must pass, first- or third-party (docs/architecture.md).

Subclass the contract for your kind in a pytest module and name the component::

    from mmml_core.testing import FusionContract

    class TestMyFusion(FusionContract):
        name = "my_fusion"              # registry name
        config = {"hidden": 16}         # optional: small, fast settings

Without ``config`` the contract asks the component class for ``contract_config()`` (a
classmethod returning a tiny config) and otherwise uses the defaults. mmml-core's own test
suite also runs these contracts over every registered component, so an installed plugin is
covered without anyone adding a test.

Checks: output shapes, finite values, gradients reach every input, padding invariance under
masks (padding is filled with large random values, so a leaking mask shows), seeded
determinism, and a config round trip: ``create(**config_dict(c))`` under another seed, given
``c``'s state dict, must rebuild the same config and give the same outputs as ``c`` on the
same inputs (what a checkpoint relies on; an encoder is not fitted again, so statistics kept
outside its state dict show).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mmml_core import registry
from mmml_core.interfaces import EncoderOutput, config_dict

__all__ = ["EncoderContract", "FusionContract", "HeadContract", "LossContract"]


def _contract_config(kind: str, name: str, explicit: dict[str, Any] | None) -> dict[str, Any]:
    if explicit is not None:
        return copy.deepcopy(explicit)
    cls = registry.load(kind, name)
    maker = getattr(cls, "contract_config", None)
    return copy.deepcopy(maker()) if callable(maker) else {}


def _seeded_create(kind: str, name: str, seed: int = 0, **config: Any) -> Any:
    torch.manual_seed(seed)
    return registry.create(kind, name, **config)


def _randomize_batchnorm(module: torch.nn.Module) -> None:
    """Give every batch norm non-trivial statistics and affine weights: freshly initialised
    ones (timm zero-initialises the last one of each residual block) can hide a mask leak."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                if m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                if m.weight is not None:
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)


def _assert_close(a: Tensor, b: Tensor, atol: float, what: str) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=lambda m: f"{what}: {m}")


class _Contract:
    kind: ClassVar[str]
    name: ClassVar[str]
    config: ClassVar[dict[str, Any] | None] = None

    def component_config(self) -> dict[str, Any]:
        return _contract_config(self.kind, self.name, self.config)

    def make(self, seed: int = 0) -> Any:
        return _seeded_create(self.kind, self.name, seed, **self.component_config())

    def ready(self, seed: int = 0) -> Any:
        """The component as the checks use it (an encoder is fitted first)."""
        return self.make(seed)

    def round_trip_outputs(self, component: Any) -> dict[str, Tensor]:
        """Named outputs of ``component`` on the contract's fixed inputs, compared by the
        config round trip."""
        raise NotImplementedError

    def test_config_round_trip(self) -> None:
        comp = self.ready(seed=0).eval()
        cfg = config_dict(comp)
        torch.manual_seed(1)  # another initialisation: only the state dict may make them equal
        again = registry.create(self.kind, self.name, **copy.deepcopy(cfg)).eval()
        assert again.config == comp.config
        again.load_state_dict(comp.state_dict())
        with torch.no_grad():
            torch.manual_seed(0)
            expected = self.round_trip_outputs(comp)
            torch.manual_seed(0)
            got = self.round_trip_outputs(again)
        assert set(got) == set(expected)
        for key, value in expected.items():
            _assert_close(got[key], value, 0, f"rebuilt from config_dict + state_dict: {key}")


class EncoderContract(_Contract):
    """Contract for ``FeatureEncoder`` components of modality ``text`` or ``audio``."""

    kind = "encoder"
    #: tolerance of the padding-invariance check (float32)
    padding_atol: ClassVar[float] = 1e-5

    def raw_items(self, modality: str) -> list[Any]:
        """Three items of different lengths; the second is the longest."""
        if modality == "text":
            return ["a good film", "the plot was slow and the acting was truly awful", "fine"]
        rng = np.random.default_rng(0)
        items = []
        for seconds, pitch in ((0.45, 180.0), (1.1, 120.0), (0.7, 240.0)):
            t = np.arange(int(16000 * seconds)) / 16000.0
            wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(t.size)
            items.append(wave.astype(np.float32))
        return items

    def ready(self, seed: int = 0) -> Any:
        enc = self.make(seed)
        enc.fit(self.raw_items(enc.modality))
        return enc

    def encode(self, enc: Any, items: list[Any]) -> EncoderOutput:
        return enc(enc.preprocess(items))

    def round_trip_outputs(self, component: Any) -> dict[str, Tensor]:
        out = self.encode(component, self.raw_items(component.modality))
        return {"mask": out.mask, "pooled": out.pooled, "hidden": out.hidden[out.mask]}

    def test_output_shapes(self) -> None:
        enc = self.ready()
        assert enc.modality in ("text", "audio", "video")
        items = self.raw_items(enc.modality)
        out = self.encode(enc, items)
        B = len(items)
        assert out.hidden.dim() == 3 and out.hidden.shape[0] == B
        assert out.hidden.shape[2] == enc.dim, (out.hidden.shape, enc.dim)
        assert out.mask.shape == out.hidden.shape[:2] and out.mask.dtype == torch.bool
        assert out.pooled.shape == (B, enc.dim)
        assert bool(out.mask.any(dim=1).all()), "every item needs at least one valid position"
        lengths = out.mask.sum(dim=1)
        assert int(lengths[1]) == out.hidden.shape[1], "batch is padded to its longest item"

    def test_finite(self) -> None:
        enc = self.ready()
        out = self.encode(enc, self.raw_items(enc.modality))
        assert torch.isfinite(out.pooled).all()
        assert torch.isfinite(out.hidden[out.mask]).all()

    def test_gradients(self) -> None:
        enc = self.ready()
        enc.train()
        out = self.encode(enc, self.raw_items(enc.modality))
        (out.pooled.sum() + out.hidden[out.mask].sum()).backward()
        trainable = [p for p in enc.parameters() if p.requires_grad]
        assert trainable, "an encoder must have trainable parameters"
        with_grad = [p for p in trainable if p.grad is not None and p.grad.abs().sum() > 0]
        assert with_grad, "no gradient reached the encoder's parameters"
        assert all(torch.isfinite(p.grad).all() for p in with_grad)

    def test_padding_invariance(self) -> None:
        enc = self.ready().eval()
        _randomize_batchnorm(enc)
        items = self.raw_items(enc.modality)
        with torch.no_grad():
            alone = self.encode(enc, [items[0]])
            batch = self.encode(enc, [items[0], items[1]])
        n = int(alone.mask[0].sum())
        assert int(batch.mask[0].sum()) == n, "the mask of a padded item must count its own length"
        _assert_close(batch.pooled[0], alone.pooled[0], self.padding_atol, "pooled")
        _assert_close(
            batch.hidden[0][batch.mask[0]],
            alone.hidden[0][alone.mask[0]],
            self.padding_atol,
            "hidden states on valid positions",
        )

    def test_determinism(self) -> None:
        a, b = self.ready(seed=3).eval(), self.ready(seed=3).eval()
        items = self.raw_items(a.modality)
        with torch.no_grad():
            _assert_close(self.encode(a, items).pooled, self.encode(b, items).pooled, 0, "seeded")


def random_encoder_outputs(
    dims: dict[str, int], lengths: dict[str, list[int]], seed: int = 0, pad_value: float = 50.0
) -> dict[str, EncoderOutput]:
    """Random encoder outputs; padded positions hold large random values (a mask leak shows)."""
    g = torch.Generator().manual_seed(seed)
    outs = {}
    for m, d in dims.items():
        lens = lengths[m]
        B, T = len(lens), max(lens)
        mask = torch.arange(T)[None, :] < torch.tensor(lens)[:, None]  # (B, T)
        hidden = torch.randn(B, T, d, generator=g)
        garbage = pad_value * torch.randn(B, T, d, generator=g)
        hidden = torch.where(mask[..., None], hidden, garbage)
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, d)
        outs[m] = EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)
    return outs


class FusionContract(_Contract):
    """Contract for ``Fusion`` components over the modalities of ``input_dims``."""

    kind = "fusion"
    input_dims: ClassVar[dict[str, int]] = {"text": 12, "audio": 10}
    lengths: ClassVar[dict[str, list[int]]] = {"text": [3, 7, 5], "audio": [9, 4, 6]}
    atol: ClassVar[float] = 1e-5

    def component_config(self) -> dict[str, Any]:
        return {**super().component_config(), "input_dims": dict(self.input_dims)}

    def inputs(self, seed: int = 0) -> dict[str, EncoderOutput]:
        lengths = {m: self.lengths.get(m, [4, 6, 5]) for m in self.input_dims}
        return random_encoder_outputs(self.input_dims, lengths, seed)

    def round_trip_outputs(self, component: Any) -> dict[str, Tensor]:
        return {"fused": component(self.inputs())}

    def test_output_shape(self) -> None:
        fusion = self.make().eval()
        out = fusion(self.inputs())
        assert out.shape == (3, fusion.out_dim)

    def test_finite(self) -> None:
        fusion = self.make().train()
        assert torch.isfinite(fusion(self.inputs())).all()

    def test_gradients_reach_every_modality(self) -> None:
        fusion = self.make().train()
        inputs = self.inputs()
        for o in inputs.values():
            o.hidden.requires_grad_(True)
            o.pooled.requires_grad_(True)
        fusion(inputs).pow(2).sum().backward()
        for m, o in inputs.items():
            grads = [g for g in (o.hidden.grad, o.pooled.grad) if g is not None]
            assert grads and any(g.abs().sum() > 0 for g in grads), f"no gradient reaches {m!r}"
            assert all(torch.isfinite(g).all() for g in grads)
            if o.hidden.grad is not None:  # padded positions must get no gradient
                assert o.hidden.grad[~o.mask].abs().sum() == 0, f"gradient leaks into {m!r} padding"

    def test_padding_invariance(self) -> None:
        fusion = self.make().eval()
        full = self.inputs()
        alone = {
            m: EncoderOutput(
                hidden=o.hidden[:1, : int(o.mask[0].sum())],
                mask=o.mask[:1, : int(o.mask[0].sum())],
                pooled=o.pooled[:1],
            )
            for m, o in full.items()
        }
        with torch.no_grad():
            _assert_close(fusion(full)[0], fusion(alone)[0], self.atol, "item alone vs padded")

    def test_determinism(self) -> None:
        a, b = self.make(seed=5).eval(), self.make(seed=5).eval()
        with torch.no_grad():
            _assert_close(a(self.inputs()), b(self.inputs()), 0, "seeded")


class HeadContract(_Contract):
    kind = "head"
    in_dim: ClassVar[int] = 8

    def component_config(self) -> dict[str, Any]:
        return {**super().component_config(), "in_dim": self.in_dim}

    def features(self) -> Tensor:
        return torch.randn(4, self.in_dim, generator=torch.Generator().manual_seed(0))

    def round_trip_outputs(self, component: Any) -> dict[str, Tensor]:
        return {"prediction": component(self.features())}

    def test_output_shape_and_finite(self) -> None:
        out = self.make().eval()(self.features())
        assert out.shape == (4,) and torch.isfinite(out).all()

    def test_gradients(self) -> None:
        x = self.features().requires_grad_(True)
        self.make().train()(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0

    def test_determinism(self) -> None:
        a, b = self.make(seed=2).eval(), self.make(seed=2).eval()
        with torch.no_grad():
            _assert_close(a(self.features()), b(self.features()), 0, "seeded")


class LossContract(_Contract):
    kind = "loss"

    def data(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        g = torch.Generator().manual_seed(0)
        preds = {h: torch.randn(6, generator=g).requires_grad_(True) for h in "MTA"}
        targets = {h: torch.rand(6, generator=g) * 2 - 1 for h in "MTA"}
        return preds, targets

    def round_trip_outputs(self, component: Any) -> dict[str, Tensor]:
        total, parts = component(*self.data())
        return {"total": total, **{f"part {h}": p for h, p in parts.items()}}

    def test_total_is_weighted_sum_of_parts(self) -> None:
        cfg = {**self.component_config(), "weights": {"M": 1.0, "T": 0.5, "A": 2.0}}
        loss = registry.create(self.kind, self.name, **cfg)
        preds, targets = self.data()
        total, parts = loss(preds, targets)
        assert total.dim() == 0 and torch.isfinite(total)
        assert set(parts) == {"M", "T", "A"}
        expected = parts["M"] + 0.5 * parts["T"] + 2.0 * parts["A"]
        _assert_close(total, expected, 1e-6, "total")
        total.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in preds.values())

    def test_single_loss_uses_fused_head_only(self) -> None:
        loss = registry.create(
            self.kind, self.name, **{**self.component_config(), "weights": {"M": 1.0}}
        )
        preds, targets = self.data()
        total, parts = loss(preds, targets)
        assert set(parts) == {"M"}
        total.backward()
        assert preds["T"].grad is None and preds["A"].grad is None

    def test_perfect_prediction_costs_nothing(self) -> None:
        loss = self.make()
        _, targets = self.data()
        total, _ = loss({h: t.clone() for h, t in targets.items()}, targets)
        assert float(total) == 0.0

    def test_missing_heads_are_skipped(self) -> None:
        loss = self.make()
        preds, targets = self.data()
        total, parts = loss({"T": preds["T"]}, targets)
        assert set(parts) == {"T"}


CONTRACTS: dict[str, type[_Contract]] = {
    "encoder": EncoderContract,
    "fusion": FusionContract,
    "head": HeadContract,
    "loss": LossContract,
}
__all__ += ["CONTRACTS", "random_encoder_outputs"]


def write_tiny_dataset(
    root: str | Path,
    n_per_split: dict[str, int] | None = None,
    *,
    seconds: float = 0.4,
    seed: int = 0,
) -> Path:
    """A small learnable MOSI-style dataset (``--dataset-kind mosi``) in the MMSA layout, for
    testing a plugin inside ``mmml-bench``: ``root/label.csv`` and real 16 kHz WAV files under
    ``root/wav``. The label's sign is carried by a sentiment word in the text and by the pitch
    of a noisy tone in the audio, so a tiny model can fit it within a few epochs."""
    import csv

    import soundfile as sf

    from mmml_core.data.reader import COLUMNS

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    n_per_split = n_per_split or {"train": 24, "valid": 8, "test": 8}
    words = {1: ["great", "good", "lovely", "superb"], -1: ["awful", "bad", "boring", "terrible"]}
    rng = np.random.default_rng(seed)
    rows = []
    for mode, n in n_per_split.items():
        for i in range(n):
            sign = 1 if i % 2 == 0 else -1
            label = float(sign * rng.choice([0.6, 1.2, 2.0, 2.8]))
            video, clip = f"vid{mode}{i // 4}", f"{i % 4}"
            t = np.arange(int(16000 * seconds * rng.uniform(0.7, 1.3))) / 16000
            wave = 0.4 * np.sin(2 * np.pi * (300.0 if sign > 0 else 120.0) * t)
            wave = wave + 0.01 * rng.standard_normal(t.size)
            path = root / "wav" / video / f"{clip}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave.astype(np.float32), 16000, subtype="PCM_16")
            rows.append(
                [
                    video,
                    clip,
                    f"the film was {words[sign][i % 4]}",
                    f"{label:.1f}",
                    "",
                    "",
                    "",
                    "Positive" if sign > 0 else "Negative",
                    mode,
                ]
            )
    with open(root / "label.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return root


__all__ += ["write_tiny_dataset"]

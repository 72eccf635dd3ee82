"""The context-aware model (docs/architecture.md#context): the same encoders and the same
fusion on the current and the context pair, heads on their concatenation, absent contexts
masked out; a third-party fusion (the scaffold template's) trains with context unchanged;
the context presets resolve to the authors' large context model."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_dists import BENCH

from mmml_core import cli, registry
from mmml_core.data import load_dataset, make_collate
from mmml_core.model import ModelSpec, build_model
from mmml_core.run import load_config_file, preset_path
from mmml_core.runconfig import ConfigErrors, Layer, resolve, settings

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

TINY = {
    "text": {"name": "roberta", "config": {"checkpoint": "random:tiny"}},
    "audio": {"name": "data2vec", "config": {"checkpoint": "random:tiny"}},
}


def _model(context: bool, fusion: str = "cross_attn", gate: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    config = {"layers": 1} if fusion == "cross_attn" else {}
    spec = ModelSpec(TINY, {"name": fusion, "config": config}, context=context, context_gate=gate)
    return build_model(spec).eval()


def test_context_model_shares_encoders_and_fusion_and_masks_absent_contexts():
    model = _model(context=True)
    plain = _model(context=False)
    # only the heads differ: they read current and context features (twice as wide)
    diff = {k for k in model.state_dict()} ^ {k for k in plain.state_dict()}
    assert not diff
    for name, p in model.state_dict().items():
        q = plain.state_dict()[name]
        if p.shape != q.shape:
            assert name.startswith(("head.", "subnet_heads.")), name
            assert p.shape[-1] == 2 * q.shape[-1]
    rng = np.random.default_rng(0)
    texts = ["it was great", "so boring", "okay i guess"]
    waves = [rng.standard_normal(n).astype(np.float32) for n in (8000, 12000, 4000)]
    items = [
        {"id": str(i), "text": t, "audio": w, "labels": {"M": 0.0},
         "context": {"text": c_t, "audio": c_a}}
        for i, (t, w, c_t, c_a) in enumerate(zip(
            texts, waves,
            [[], ["first one"], ["first one", "second one"]],
            [[], [waves[0]], [waves[0], waves[1]]],
            strict=True,
        ))
    ]  # fmt: skip
    collate = make_collate(dict(model.encoders), ("M", "T", "A"))
    batch = collate(items)
    assert batch["context"]["present"].tolist() == [False, True, True]
    ctx = batch["context"]["inputs"]
    assert ctx["text"]["input_ids"].shape[0] == 2  # only the items with context are encoded
    sep = model.encoders["text"].tokenizer.sep_token
    joined = model.encoders["text"].preprocess([f"first one{sep}second one"])["input_ids"][0]
    n = int(ctx["text"]["attention_mask"][1].sum())
    assert ctx["text"]["input_ids"][1, :n].tolist() == joined[: len(joined)].tolist()[:n]
    assert int(ctx["audio"]["attention_mask"][1].sum()) == 20000  # clips concatenated
    with torch.no_grad():
        preds = model(batch["inputs"], batch["context"])
        enc = model.encode(batch["inputs"])
        enc_c = model.encode(ctx)
        fused = model.fusion(enc)
        fused_c = torch.zeros_like(fused)
        fused_c[1:] = model.fusion(enc_c)  # the same fusion on the context pair
        expect_m = model.head(torch.cat([fused, fused_c], -1))
        pooled_c = torch.zeros_like(enc["text"].pooled)
        pooled_c[1:] = enc_c["text"].pooled
        expect_t = model.subnet_heads["text"](torch.cat([enc["text"].pooled, pooled_c], -1))
        # no context at all (e.g. a prediction without one): every item counts as absent
        alone = model(batch["inputs"])
    torch.testing.assert_close(preds["M"], expect_m)
    torch.testing.assert_close(preds["T"], expect_t)
    torch.testing.assert_close(alone["M"][0], preds["M"][0])  # item 0 had none anyway
    assert not torch.allclose(alone["M"][1:], preds["M"][1:])


def _gate_batch(model: torch.nn.Module) -> dict:
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(8000).astype(np.float32)
    items = [
        {"id": str(i), "text": t, "audio": wave, "labels": {"M": 0.0},
         "context": {"text": ["it was great"], "audio": [wave]}}
        for i, t in enumerate(["so boring", "i felt the same way"])
    ]  # fmt: skip
    return make_collate(dict(model.encoders), ("M", "T", "A"))(items)


def test_context_gates_start_closed_and_are_decided_by_the_current_utterance():
    """model.context_gate (the default): each context feature c reaches its head as
    sigmoid(w . current + b) * (A c + a): A and a start at zero, so the untrained context model
    predicts exactly as if it had no context; the gate is one scalar per item, decided by
    that item's current feature; the gates train with the heads' parameter group."""
    gated = _model(context=True, gate=True)
    assert set(gated.context_gates) == {"fused", "text", "audio"}
    batch = _gate_batch(gated)
    with torch.no_grad():
        closed = gated(batch["inputs"], batch["context"])
        alone = gated(batch["inputs"])
        torch.manual_seed(1)
        for p in gated.context_gates.parameters():
            p.normal_(0, 0.3)
        opened = gated(batch["inputs"], batch["context"])
        enc, enc_c = gated.encode(batch["inputs"]), gated.encode(batch["context"]["inputs"])
        f, f_c = gated.fusion(enc), gated.fusion(enc_c)
        g = gated.context_gates["fused"]
        gate = torch.sigmoid(f @ g.proj.weight[0] + g.proj.bias)  # (B,)
        expect = gated.head(torch.cat([f, gate[:, None] * (f_c @ g.map.weight.T + g.map.bias)], -1))
        t = gated.context_gates["text"]
        v, v_c = enc["text"].pooled, enc_c["text"].pooled
        gate_t = torch.sigmoid(v @ t.proj.weight[0] + t.proj.bias)
        expect_t = gated.subnet_heads["text"](
            torch.cat([v, gate_t[:, None] * (v_c @ t.map.weight.T + t.map.bias)], -1)
        )
    for h in ("M", "T", "A"):
        torch.testing.assert_close(closed[h], alone[h])
    torch.testing.assert_close(opened["M"], expect)
    torch.testing.assert_close(opened["T"], expect_t)
    assert not torch.allclose(gate[0], gate[1])  # same context, different current utterances
    from mmml_core.engine import TrainConfig, default_groups
    from mmml_core.optim import model_param_groups

    groups = model_param_groups(gated, default_groups(gated.spec, TrainConfig()))
    heads = next(g for g in groups if g["name"] == "heads")["params"]
    assert all(any(p is q for q in heads) for p in gated.context_gates.parameters())


def test_weights_with_the_earlier_scalar_gates_load_and_predict_as_before(tmp_path):
    """Checkpoints saved while the gate was one learned scalar g per feature (context * tanh(g))
    load into today's gate and give the same predictions as that formula."""
    from safetensors.torch import save_file

    from mmml_core.checkpoint import _load_weights

    model = _model(context=True, gate=True)
    batch = _gate_batch(model)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("context_gates.")}
    g = {"fused": 0.7, "text": -0.4, "audio": 1.3}
    state.update({f"context_gates.{n}": torch.tensor([x]) for n, x in g.items()})
    save_file(state, str(tmp_path / "model.safetensors"))
    _load_weights(model, tmp_path / "model.safetensors")
    with torch.no_grad():
        preds = model(batch["inputs"], batch["context"])
        enc, enc_c = model.encode(batch["inputs"]), model.encode(batch["context"]["inputs"])
        f, f_c = model.fusion(enc), model.fusion(enc_c)
        expect = model.head(torch.cat([f, math.tanh(g["fused"]) * f_c], -1))
        v, v_c = enc["audio"].pooled, enc_c["audio"].pooled
        expect_a = model.subnet_heads["audio"](torch.cat([v, math.tanh(g["audio"]) * v_c], -1))
    torch.testing.assert_close(preds["M"], expect)
    torch.testing.assert_close(preds["A"], expect_a)


def test_demo_batches_mark_first_utterances_as_without_context():
    data = load_dataset(None, "demo", text_context=1, audio_context=1, max_items=30)
    split = data.split("train")
    items = [split[i] for i in range(len(split))]
    model = _model(context=True)
    batch = make_collate(dict(model.encoders), ("M", "T", "A"))(items)
    present = batch["context"]["present"].tolist()
    rows = split.rows
    for i, row in enumerate(rows):
        first = all(r.video_id != row.video_id or r.clip_id >= row.clip_id for r in rows)
        assert present[i] == (not first), row.id


def test_every_modality_needs_a_window_and_windows_need_their_modality():
    with pytest.raises(ConfigErrors) as err:
        resolve([{"data": {"text_context": 2}}])
    assert [p.key for p in err.value.problems] == ["data.audio_context"]
    with pytest.raises(ConfigErrors) as err:
        resolve([{"data": {"audio_context": 1, "text_context": 1}}], modalities=["text"])
    assert [p.key for p in err.value.problems] == ["data.audio_context"]
    text_only = resolve([{"data": {"text_context": 1}}], modalities=["text"])
    assert text_only.model.context is True


@pytest.mark.parametrize("kind", ["mosi", "mosei"])
def test_context_presets_resolve_to_the_authors_large_context_model(kind, tmp_path):
    layers = [Layer("p", load_config_file(preset_path(f"paper-{kind}-context")))]
    s = settings(resolve([*layers, {"data": {"dataset": str(tmp_path)}}]))
    assert s["text.checkpoint"] == "roberta-large"
    assert s["audio"] == "data2vec"
    assert s["audio.checkpoint"] == "facebook/data2vec-audio-large-960h"
    assert (s["fusion"], s["fusion.hidden"], s["fusion.heads"]) == ("cross_attn", 1024, 16)
    assert (s["data.text_context"], s["data.audio_context"]) == (2, 1)
    assert s["heads"] == ["M", "T", "A"]
    authors = settings(
        resolve([*layers, {"data": {"dataset": str(tmp_path)}, "profile": "authors"}])
    )
    assert (authors["head.layers"], authors["head.hidden"]) == (2, 768)  # their fused head
    assert (authors["train.lr"], authors["train.batch_size"]) == (5e-6, 8)


def test_context_preset_dry_run_prints_the_resolved_settings(tmp_path):
    """No hub here: the dry run still prints what resolved, then the unreachable checkpoints."""
    proc = subprocess.run(
        [BENCH, "--preset", "paper-mosi-context", "--dataset", str(tmp_path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, registry.PLUGINS_ENV: "mmml-encoders-hf,mmml-fusion-transformer"},
    )
    from mmml_core.commands.train import RESOLVED_HEADER

    assert proc.returncode == 2 and proc.stdout == ""  # the checkpoints are not here
    text = proc.stderr.split(RESOLVED_HEADER, 1)[1]
    resolved = json.loads(text[: text.index("\nmmml-bench: error:")])
    assert resolved["data"]["text_context"] == 2 and resolved["data"]["audio_context"] == 1
    assert resolved["model"]["context"] is True
    enc = resolved["model"]["encoders"]
    assert enc["text"]["config"]["checkpoint"] == "roberta-large"
    assert enc["audio"]["config"]["checkpoint"] == "facebook/data2vec-audio-large-960h"
    assert resolved["model"]["fusion"]["config"] == {"layers": 5, "hidden": 1024, "heads": 16}
    assert "Traceback" not in proc.stderr


def test_a_third_party_fusion_trains_with_context_unchanged(tmp_path):
    """The scaffold template's fusion, installed by hand (its entry point), trains a
    context model on the demo set with no change to its code."""
    dest = tmp_path / "fusion-gated"
    assert cli.main(["new-plugin", "gated", "--kind", "fusion", "--dest", str(dest)]) == 0
    site = tmp_path / "site"
    info = site / "mmml_fusion_gated-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mmml-fusion-gated\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[mmml_core.fusions]\ngated = mmml_fusion_gated.fusion:GatedFusion\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(dest / "src")]),
        **{registry.PLUGINS_ENV: "mmml-encoders-hf,mmml-fusion-gated"},
    )
    out = tmp_path / "run"
    proc = subprocess.run(
        [BENCH, "--fusion", "gated", "--seeds", "1", "--out", str(out), "--no-progress",
         "data.text_context=1", "data.audio_context=1", "data.max_items=12",
         "train.max_epochs=1", "--json"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["config"]["model"]["fusion"]["name"] == "gated"
    assert summary["config"]["model"]["context"] is True
    seed = json.loads((out / "seed-1" / "results.json").read_text())
    assert seed["model"]["context"] is True
    # the checkpoint rebuilds the context model
    config = json.loads((out / "seed-1" / "best_loss" / "config.json").read_text())
    assert config["model"]["context"] is True
    # and predicts without a context (as for a first utterance)
    wav = next((Path(registry.__file__).parent / "data" / "demo" / "wav").rglob("*.ogg"))
    proc = subprocess.run(
        [BENCH, "predict", str(out / "seed-1" / "best_loss"), "--text", "what a film",
         "--audio", str(wav), "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == {"M", "T", "A"}


def test_empty_context_encode_reads_the_authors_silence():
    """data.empty_context=encode (profile authors): a first utterance's context is an empty
    text (<s></s> + padding) and 6 s of zeros with an all-zero sample mask, handed to the
    transformers model; its audio vector is the mean over every frame."""
    cfg = resolve(
        [
            {
                "profile": "authors",
                "data": {"text_context": 1, "audio_context": 1, "max_audio_seconds": 1.0},
                "model": {"encoders": TINY},
            }
        ]  # fmt: skip
    )
    assert cfg.data.empty_context == "encode" and cfg.model.empty_context == "encode"
    m = cfg.model
    assert m.context_gate is False  # the authors' context features enter ungated
    torch.manual_seed(0)
    model = build_model(
        ModelSpec(
            m.encoders, m.fusion, m.head, m.subnet_head, tuple(m.heads), True, "encode", False
        )  # fmt: skip
    ).eval()
    rng = np.random.default_rng(1)
    wave = rng.standard_normal(8000).astype(np.float32)
    items = [
        {"id": "0", "text": "first", "audio": wave, "labels": {"M": 0.0},
         "context": {"text": [], "audio": []}},
        {"id": "1", "text": "second", "audio": wave, "labels": {"M": 0.0},
         "context": {"text": ["first"], "audio": [wave]}},
    ]  # fmt: skip
    batch = make_collate(dict(model.encoders), ("M",), "encode")(items)
    assert batch["context"]["present"].tolist() == [True, True]
    ctx = batch["context"]["inputs"]
    tok = model.encoders["text"].tokenizer
    assert ctx["text"]["input_ids"][0, :2].tolist() == [tok.cls_token_id, tok.sep_token_id]
    assert int(ctx["text"]["attention_mask"][0].sum()) == 2
    assert ctx["audio"]["input_values"].shape == (2, 16000)  # max_length: 1 s here
    assert int(ctx["audio"]["attention_mask"][0].sum()) == 0  # the all-zero sample mask
    audio = model.encoders["audio"]
    with torch.no_grad():
        out = audio(ctx["audio"])
        hf = audio.model(
            input_values=ctx["audio"]["input_values"],
            attention_mask=ctx["audio"]["attention_mask"],
        ).last_hidden_state
    assert bool(out.mask[0].all())  # every frame counts
    torch.testing.assert_close(out.pooled[0], hf[0].mean(0))
    # the default masks it out instead: no encoder work for item 0
    masked = make_collate(dict(model.encoders), ("M",))(items)
    assert masked["context"]["present"].tolist() == [False, True]


def test_model_context_gate_is_an_override_key():
    """``model.context_gate=false`` on the command line turns the gates off (as the authors
    profile does); anything but true/false is one named problem."""
    from mmml_core.runconfig import override_layer

    base = [Layer("p", {"data": {"dataset": "demo", "text_context": 1, "audio_context": 1}})]
    layer, problems = override_layer(["model.context_gate=false"], base)
    assert not problems
    assert settings(resolve([*base, layer]))["model.context_gate"] is False
    assert settings(resolve(base))["model.context_gate"] is True
    _, problems = override_layer(["model.context_gate=maybe"], base)
    assert [p.key for p in problems] == ["model.context_gate"]

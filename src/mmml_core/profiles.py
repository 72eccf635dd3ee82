"""Profiles: which computation a run follows where the paper and its authors' code differ.

A profile is one configuration layer that the run layer inserts just above the dataset kind's
defaults (so a preset, a config file, a flag or a ``key=value`` override still wins over it).
Every setting it makes is an ordinary, documented configuration key, so a dry run shows each
one with the layer ``profile 'authors'`` as its origin (docs/training.md#profiles).

``paper`` (the default)
    The paper where it speaks, our documented choices where it is silent: per-batch padding
    with a padding-invariant audio forward, BERT-style initialisation, one AdamW for the
    whole run, length-bucketed batches, bf16 on CUDA. It sets nothing beyond the layers below.

``authors``
    What the paper's code computes (docs/paper.md#the-authors-pipeline): texts re-cased (English)
    and padded to exactly ``max_tokens``; clips padded to exactly ``max_seconds`` with the
    sample mask handed to the transformers model as their loader does; the transformers
    encoders' attention computed eagerly (matmul, softmax, matmul) instead of SDPA; the fusion's CLS vectors
    drawn from N(0, 1) (an embedding); subnet heads with dropout 0.3; their form of the
    ``transformer`` variant (3 layers for English, 2 for Mandarin); a four-layer head on the
    concatenation baseline and a two-layer one on the context model; a new AdamW every epoch at lr 5e-6 for every parameter, batch 8,
    uniform shuffling, fp32; a tie in validation Acc2 goes to the later epoch; a
    single-modality model learns its own modality's label where the dataset has one (their
    Table 2 on CH-SIMS); MOSEI's clips without usable audio are dropped (and listed); the
    openSMILE baseline reads LLDs with their deltas; a context model encodes the empty
    context of a first utterance instead of masking it out.

Settings only a component has (``padding``, ``masking``, ``attention``, ``cls_init_std``, ...) are applied to
the components that have such a field; a third-party component without it is left as it is.
This module imports no torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_PROFILE", "PROFILES", "profile_layer"]

PROFILES: tuple[str, ...] = ("paper", "authors")
DEFAULT_PROFILE = "paper"

#: The authors' ``transformer`` variant depth per text language (their English and Mandarin
#: scripts).
_AUTHORS_VARIANT_LAYERS = {"en": 3, "zh": 2}


def profile_layer(
    name: str, *, kind: str | None, language: str, fusion: str | None, context: bool = False
) -> dict:
    """The configuration layer of profile ``name`` for a run on dataset kind ``kind`` (its
    text ``language``) with fusion ``fusion`` (None: a single-modality model), reading
    conversational ``context`` or not. Keys under ``fields`` fill component fields, by role,
    that no layer above sets."""
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {name!r}")
    if name == "paper":
        return {}
    english = language == "en"
    head: dict[str, Any] = {}
    if context:
        # their context model's fused head: Dropout, 4 x 1024 -> 768 -> 1
        head.update(layers=2, hidden=768)
    elif fusion == "concat":
        # their concatenation baseline: Dropout, 1536 -> 768 -> 768 -> 512 -> 1
        head["layers"] = 4
    data: dict[str, Any] = {"recase": "on" if english else "off"}
    if context:
        # an item without an earlier utterance reads an empty text and an empty clip, which
        # their context model encodes (instead of masking its context out)
        data["empty_context"] = "encode"
    if kind == "mosei":
        data["skip_unusable"] = True  # their six MOSEI clips (docs/data.md)
    layer: dict[str, Any] = {
        "data": data,
        "train": {
            "lr": 5e-6,  # their run script: one rate for every parameter
            "pretrained_lr": 5e-6,
            "batch_size": 8,
            "bucket_by_length": False,  # uniform shuffling
            "amp": False,  # fp32
            "reset_optimizer": "epoch",  # a new AdamW at the start of every epoch
            "acc_tie": "later",  # `>=` when keeping the best-Acc2 weights
            "unimodal_label": "own",  # their Table 2 trains the audio model on label_A (SIMS)
        },
        "fields": {
            "encoder": {
                "padding": "max_length",  # 96 / 64 tokens, 96,000 samples
                "masking": "hf",  # the sample mask handed to the transformers model
                "attention": "eager",  # transformers' explicit attention, not SDPA
                "normalize": True,  # every clip to zero mean, unit variance
                "freeze_feature_extractor": True,  # the CNN front end
                "deltas": True,  # openSMILE: ComParE_2016 LLDs with deltas (130 columns)
            },
            "fusion": {
                "cls_init_std": 1.0,  # nn.Embedding(1, H): N(0, 1)
                "transformer_form": "authors",
                "variant_layers": _AUTHORS_VARIANT_LAYERS.get(language, 3),
            },
            "subnet_head": {"dropout": 0.3},
            "head": head,
        },
    }
    if context:
        layer["model"] = {"context_gate": False}  # their context features enter ungated
    return layer

"""Batching: collate through real FeatureEncoders, and the length-bucketed sampler."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import CharTextEncoder, FrameAudioEncoder, make_mosi_like, make_sims_like
from torch.utils.data import DataLoader

from mmml_core.data import LengthBucketSampler, collate, load_dataset, make_collate
from mmml_core.interfaces import FeatureEncoder

HEADS = ("M", "T", "A")


def _encoders() -> dict[str, FeatureEncoder]:
    return {
        "text": CharTextEncoder(CharTextEncoder.Config()),
        "audio": FrameAudioEncoder(FrameAudioEncoder.Config()),
    }


def _items() -> list[dict]:
    return [
        {
            "id": "v$_$1",
            "text": "good",
            "audio": np.ones(800, np.float32),
            "labels": {"M": 0.5, "T": 1.0, "A": 0.0},
        },
        {
            "id": "v$_$2",
            "text": "bad movie",
            "audio": np.arange(1200, dtype=np.float32),
            "labels": {"M": -0.5, "T": -1.0, "A": 0.2},
        },
    ]


def test_collate_pads_to_longest_and_stacks_targets() -> None:
    batch = collate(_items(), _encoders(), HEADS)
    assert batch["ids"] == ["v$_$1", "v$_$2"]
    text, audio = batch["inputs"]["text"], batch["inputs"]["audio"]
    assert text["input_ids"].shape == (2, 9)  # "bad movie" is the longest text
    assert text["attention_mask"].sum(1).tolist() == [4, 9]
    assert audio["input_values"].shape == (2, 1200)
    assert audio["lengths"].tolist() == [800, 1200]
    for head, expected in {"M": [0.5, -0.5], "T": [1.0, -1.0], "A": [0.0, 0.2]}.items():
        assert batch["targets"][head].dtype == torch.float32
        assert batch["targets"][head].shape == (2,)
        torch.testing.assert_close(batch["targets"][head], torch.tensor(expected))


def test_collate_one_modality_only_the_given_heads_and_errors() -> None:
    batch = collate(_items(), {"text": CharTextEncoder(CharTextEncoder.Config())}, ["M", "T"])
    assert list(batch["inputs"]) == ["text"] and list(batch["targets"]) == ["M", "T"]
    assert collate(_items(), _encoders(), [])["targets"] == {}
    with pytest.raises(KeyError, match="no item field for modality 'vision'"):
        collate(_items(), {"vision": CharTextEncoder(CharTextEncoder.Config())}, HEADS)
    with pytest.raises(ValueError, match="empty batch"):
        collate([], _encoders(), HEADS)
    unlabelled = [{**item, "labels": {"T": 1.0}} for item in _items()]
    with pytest.raises(KeyError, match="no label 'A' and no multimodal label 'M'"):
        collate(unlabelled, _encoders(), ["A"])


def test_text_only_items_collate_without_audio(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    train = load_dataset(tmp_path, "mosi", modalities=["text"]).split("train")
    items = [train[i] for i in range(len(train))]
    assert all("audio" not in item for item in items)
    batch = make_collate({"text": CharTextEncoder(CharTextEncoder.Config())}, ["M", "T"])(items)
    torch.testing.assert_close(batch["targets"]["T"], torch.tensor([2.4, -1.8, 0.0]))
    with pytest.raises(KeyError, match="no item field for modality 'audio'.*'text'"):
        collate(items, _encoders(), HEADS)


def test_collator_pickles_and_feeds_a_worker_dataloader(tmp_path: Path) -> None:
    make_sims_like(tmp_path)
    train = load_dataset(tmp_path, "sims").split("train")
    collate_fn = pickle.loads(pickle.dumps(make_collate(_encoders(), HEADS)))
    assert collate_fn.heads == HEADS
    sampler = LengthBucketSampler(train.lengths, batch_size=2, seed=0)
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=collate_fn, num_workers=1)
    (batch,) = list(loader)
    assert sorted(batch["ids"]) == ["video_0001$_$0001", "video_0001$_$0002"]
    assert batch["inputs"]["audio"]["input_values"].shape == (2, 16000)
    encoders = _encoders()
    out = encoders["audio"](batch["inputs"]["audio"])
    assert out.mask.sum(1).tolist() == [
        n // 400 for n in batch["inputs"]["audio"]["lengths"].tolist()
    ]


def _epoch(sampler: LengthBucketSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_bucket_sampler_every_item_once_seeded_and_epoch_dependent() -> None:
    rng = np.random.default_rng(123)
    lengths = rng.integers(1000, 96000, size=103)
    sampler = LengthBucketSampler(lengths, batch_size=8, seed=1, bucket_size_multiplier=4)
    batches = _epoch(sampler, 0)
    assert len(batches) == len(sampler) == 13
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert sum(len(b) == 8 for b in batches) == 12  # one partial batch of 7
    again = LengthBucketSampler(lengths, batch_size=8, seed=1, bucket_size_multiplier=4)
    assert _epoch(again, 0) == batches  # same seed and epoch: same order
    assert _epoch(sampler, 1) != batches  # next epoch: another order
    assert sorted(i for b in _epoch(sampler, 1) for i in b) == list(range(103))
    other = LengthBucketSampler(lengths, batch_size=8, seed=2, bucket_size_multiplier=4)
    assert _epoch(other, 0) != batches


def test_bucket_sampler_groups_similar_lengths() -> None:
    lengths = np.random.default_rng(0).integers(1000, 96000, size=400)
    sampler = LengthBucketSampler(lengths, batch_size=16, seed=0, bucket_size_multiplier=25)
    padded = sum(16 * max(lengths[b]) - sum(lengths[b]) for b in sampler if len(b) == 16)
    # 25 batches per pool of 400: the whole set is one pool, sorted, so padding is tiny
    # compared with random batches (about a third of all samples would be padding)
    random_batches = np.random.default_rng(1).permutation(400).reshape(25, 16)
    padded_random = sum(16 * max(lengths[b]) - sum(lengths[b]) for b in random_batches)
    assert padded < padded_random / 10


def test_bucket_sampler_without_shuffle_and_drop_last() -> None:
    lengths = [50, 10, 40, 20, 30]
    sampler = LengthBucketSampler(lengths, batch_size=2, shuffle=False)
    assert list(sampler) == [[1, 3], [4, 2], [0]]
    dropping = LengthBucketSampler(lengths, batch_size=2, seed=3, drop_last=True)
    batches = list(dropping)
    assert len(batches) == len(dropping) == 2 and all(len(b) == 2 for b in batches)
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler(lengths, batch_size=0)

"""A seed reports its own speed and memory (results.json ``throughput``, docs/training.md):
training samples per second over the epochs it trained and the peak memory, saying what was
measured. The killed-and-resumed run of tests/test_cli.py checks that a resume counts every
epoch once."""

from __future__ import annotations

import torch

from mmml_core.engine import describe_throughput, throughput


def test_speed_is_the_trained_samples_over_the_training_seconds_and_memory_says_its_kind():
    meta = {"timing": {"train_seconds": 4.0, "train_samples": 180}}
    t = throughput(meta, torch.device("cpu"))
    assert t["train_samples_per_s"] == 45.0
    assert (t["train_seconds"], t["train_samples"]) == (4.0, 180)
    assert t["peak_memory"] == "process_peak_rss"
    big = torch.ones(64, 2**20)  # 256 MiB touched: the process peak is at least that
    big += 1
    assert throughput(meta, torch.device("cpu"))["peak_memory_bytes"] >= big.numel() * 4
    line = describe_throughput(t)
    assert line.startswith("45 samples/s training, peak memory ")
    assert line.endswith("GiB (process peak RSS)")


def test_a_seed_that_trained_no_epoch_has_no_speed():
    t = throughput({"epoch": 0, "history": []}, torch.device("cpu"))
    assert t["train_samples_per_s"] is None and t["train_samples"] == 0
    assert describe_throughput(t).startswith("no epoch trained")

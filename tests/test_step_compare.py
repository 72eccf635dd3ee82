"""benchmarks/step_compare.py runs one row of each configuration on tiny sizes (one step, in
this process) and resolves the authors' settings through the profile; the measured numbers
are a benchmark's, never asserted here (benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_compare.py"


def _module():
    spec = importlib.util.spec_from_file_location("step_compare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["step_compare"] = module
    spec.loader.exec_module(module)
    return module


def test_authors_and_fast_rows_run_one_step_each():
    sc = _module()
    base = {"model": "tiny", "workload": "mix", "device": "cpu", "batch_size": 2, "steps": 1,
            "warmup": 1, "items": 2, "workers": 0, "compile": False, "repeats": 1,
            "threads": 0}  # fmt: skip
    authors = sc.worker({**base, "config": "authors"})
    fast = sc.worker({**base, "config": "fast"})
    a, f = authors["settings"], fast["settings"]
    assert a["profile"] == "authors" and f["profile"] == "paper"
    assert a["text"] == {"padding": "max_length", "attention": "eager"}
    assert a["audio"] == {"padding": "max_length", "masking": "hf", "attention": "eager"}
    assert (a["bucket_by_length"], a["reset_optimizer"]) == (False, "epoch")
    assert f["audio"]["attention"] == "sdpa" and f["bucket_by_length"] is True
    assert a["precision"] == f["precision"] == "fp32"  # autocast is CUDA only
    for row in (authors, fast):
        assert row["items"] == 2 and row["steps"] == 1
        assert row["samples_per_s"] > 0 and row["flops"] > 0 and row["peak_memory_bytes"] > 0
    assert authors["flops"] > fast["flops"]  # the authors pad every item to 96 tokens, 6 s


def test_mix_items_follow_the_documented_distribution():
    sc = _module()
    stats = sc.length_stats(sc.make_items("mix", 300, context=False), 6.0)
    assert 3.0 < stats["seconds_median"] < 4.0
    assert 0.1 < stats["share_cut_at_max"] < 0.25
    assert 10 <= stats["words_median"] <= 14
    items = sc.make_items("mix", 10, context=True)
    assert items[0]["context"] == {"text": [], "audio": []}  # a video's first utterance
    assert len(items[2]["context"]["text"]) == 2 and len(items[2]["context"]["audio"]) == 1

"""The paper-table recipes resolve every row's configuration (training them is a benchmark,
not a test: see benchmarks/paper_tables.py and the issue notes for measured runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fake_dists import FIRST_PARTY

pytestmark = pytest.mark.plugins(*FIRST_PARTY)

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_tables.py"
EXPECTED = {
    "2": [
        "openSMILE: audio=opensmile; fusion none; heads A",
        "Mel spectrogram: audio=mel; fusion none; heads A",
        "fine-tuned data2vec: audio=data2vec; fusion none; heads A",
    ],
    "3": [
        "text-only: text=roberta; fusion none; heads T; reports T",
        "concatenation: text=roberta, audio=data2vec; fusion concat {}; heads M,T,A; reports M",
        "+ fusion network: text=roberta, audio=data2vec; fusion cross_attn",
    ],
    "4": [  # on concat, as the paper's numbers imply; the cross_attn version extra
        "single-loss: text=roberta, audio=data2vec; fusion concat {}; heads M;",
        "multi-loss: text=roberta, audio=data2vec; fusion concat {}; heads M,T,A;",
        'single-loss (cross_attn): text=roberta, audio=data2vec; fusion cross_attn {"layers": 2}; heads M;',
        'multi-loss (cross_attn): text=roberta, audio=data2vec; fusion cross_attn {"layers": 2}; heads M,T,A;',
    ],
    "5": [
        "text-only training: text=roberta; fusion none; heads T; reports T",
        'text subnet after multi-loss: text=roberta, audio=data2vec; fusion cross_attn {"layers": 2}; heads M,T,A; reports T',
    ],
    "6": ['"variant": "fused"', '"variant": "concat"', '"variant": "transformer"'],
}


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_recipe_rows_resolve_on_the_demo_set(table):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--table", table, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(EXPECTED[table])
    for line, expected in zip(lines, EXPECTED[table], strict=True):
        assert expected in line, (line, expected)


def test_recipe_on_a_real_dataset_uses_the_paper_settings(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--table",
            "3",
            "--dry-run",
            "--dataset",
            str(tmp_path),
            "--dataset-kind",
            "sims",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'audio=hubert; fusion cross_attn {"layers": 5}; heads M,T,A' in proc.stdout
    assert "seeds [1, 11, 111]" in proc.stdout

"""Does fusion help on the demo set? Text only, audio only, concat, cross_attn (multi-loss).

    python benchmarks/demo_fusion_vs_single.py            # 3 seeds, about 15 min on 2 cores

The demo set's `label` combines a text label and an audio (prosody) label, so neither
modality alone determines it (see src/mmml_core/data/demo/README.md): both fused models
should beat both single-modality models on the test split. The script prints the table and
that comparison, and exits 1 if it does not hold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmml_core.logs import console
from mmml_core.run import ComparisonRow, load_config_file, preset_path, run_comparison


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="1,11,111")
    parser.add_argument("--out", default="runs/demo-fusion-vs-single")
    args = parser.parse_args(argv)
    base = [
        load_config_file(preset_path("demo")),
        {"seeds": [int(s) for s in args.seeds.split(",")]},
    ]
    rows = [
        ComparisonRow("(a) text only", base, head="T", modalities=["text"]),
        ComparisonRow("(b) audio only", base, head="A", modalities=["audio"]),
        ComparisonRow(
            "(c) concat", [*base, {"model": {"fusion": {"name": "concat", "config": {}}}}]
        ),
        ComparisonRow("(d) cross_attn, multi-loss", base),
    ]
    with console():  # each run's log on stderr (and in its log.txt), as mmml-bench does
        table, results = run_comparison(rows, Path(args.out))
    print(table)
    acc = {label: r["aggregate"]["best_loss"][r["head"]]["Acc2"][0] for label, r in results.items()}
    best_single = max(acc["(a) text only"], acc["(b) audio only"])
    ok = all(acc[k] > best_single for k in ("(c) concat", "(d) cross_attn, multi-loss"))
    print(
        "Acc2 (lowest-valid-loss checkpoint, mean over seeds): "
        + ", ".join(f"{k} {100 * v:.2f}" for k, v in acc.items())
    )
    print("fused models beat both single-modality models:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

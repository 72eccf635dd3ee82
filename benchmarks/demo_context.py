"""Does conversational context help on the demo set? cross_attn without and with context.

    python benchmarks/demo_context.py            # 3 seeds, about 35 min on 2 cores

About a fifth of the demo clips are echo clips: their text refers back to the utterance
before, and their text label is the previous clip's (src/mmml_core/data/demo/README.md), so
only a model that reads the previous utterance can know it. The script trains the demo
preset's cross_attn model (multi-loss) as it is and with `data.text_context=1
data.audio_context=1`, prints the table, and exits 1 unless the context model has the higher
fused-head Acc2 and the lower MAE (lowest-validation-loss checkpoint, mean over seeds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmml_core.logs import console
from mmml_core.run import ComparisonRow, load_config_file, preset_path, run_comparison

WITHOUT, WITH = "cross_attn, no context", "cross_attn, context 1 + 1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="1,11,111")
    parser.add_argument("--out", default="runs/demo-context")
    args = parser.parse_args(argv)
    base = [
        load_config_file(preset_path("demo")),
        {"seeds": [int(s) for s in args.seeds.split(",")]},
    ]
    context = {"data": {"text_context": 1, "audio_context": 1}}
    rows = [ComparisonRow(WITHOUT, base), ComparisonRow(WITH, [*base, context])]
    with console():  # each run's log on stderr (and in its log.txt), as mmml-bench does
        table, results = run_comparison(rows, Path(args.out))
    print(table)
    m = {label: r["aggregate"]["best_loss"]["M"] for label, r in results.items()}
    acc = {k: v["Acc2"][0] for k, v in m.items()}
    mae = {k: v["MAE"][0] for k, v in m.items()}
    ok = acc[WITH] > acc[WITHOUT] and mae[WITH] < mae[WITHOUT]
    print(
        "fused head, lowest-valid-loss checkpoint, mean over seeds: "
        + ", ".join(f"{k}: Acc2 {100 * acc[k]:.2f}, MAE {mae[k]:.3f}" for k in acc)
    )
    print("context beats no context on Acc2 and MAE:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

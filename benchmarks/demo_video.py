"""Does video help on the demo set? cross_attn over text + audio against text + audio + video.

    python benchmarks/demo_video.py              # 3 seeds, about 40 min on 2 cores
    python benchmarks/demo_video.py --only without & python benchmarks/demo_video.py --only with
    python benchmarks/demo_video.py              # then: reads both rows back, compares

The demo set's clips each have a short video of a drawn face whose expression shows label_V,
which is the text label by design (src/mmml_core/data/demo/README.md). On the echo clips (a
fifth of the set) the text is a reply that refers back and carries no sentiment of its own,
so without context neither the text nor the audio tells the text half of their label; the face
does. On the other clips the face repeats what the text says.

The script trains the demo preset's cross_attn model (multi-loss, L1, as `make demo`) on
text + audio (heads M, T, A) and on text + audio + video (heads M, T, A, V; the `video`
encoder's defaults: timm's `test_convnext` with random weights, 2 frames per second, at most
8), prints both checkpoint selections' tables and the fused head's MAE on the echo clips and
on the others, and exits 1 unless the video model has the higher fused-head Acc2 at the
highest-validation-Acc2 checkpoint and the lower fused-head MAE at the lowest-validation-loss
checkpoint (means over seeds; each metric at the checkpoint selected for it, as the context
benchmark does, for the reason it gives: a third of the test labels are exactly 0, so Acc2 at
the lowest-loss checkpoint is mostly the sign of near-zero predictions). It also prints both
metrics at both checkpoints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from demo_context import echo_errors  # this folder is on sys.path when a script runs

from mmml_core.logs import console
from mmml_core.run import ComparisonRow, load_config_file, preset_path, run_comparison

WITHOUT, WITH = "cross_attn, text + audio", "cross_attn, text + audio + video"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="1,11,111")
    parser.add_argument("--out", default="runs/demo-video")
    parser.add_argument("--max-epochs", type=int, help="train.max_epochs (smoke runs)")
    parser.add_argument("--max-items", type=int, help="data.max_items (smoke runs)")
    parser.add_argument(
        "--only",
        choices=("without", "with"),
        help="train one row only (two processes can train the rows side by side; a last run "
        "without --only reads both back and compares)",
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    base: list = [load_config_file(preset_path("demo")), {"seeds": seeds}]
    if args.max_epochs:
        base.append({"train": {"max_epochs": args.max_epochs}})
    if args.max_items:
        base.append({"data": {"max_items": args.max_items}})
    rows = [
        ComparisonRow(WITHOUT, base),
        # multi-loss over every modality: the preset's heads M, T, A plus the video head V
        ComparisonRow(
            WITH,
            [*base, {"model": {"heads": ["M", "T", "A", "V"]}}],
            modalities=["text", "audio", "video"],
        ),
    ]
    if args.only:
        index = 0 if args.only == "without" else 1
        with console():
            run_comparison(rows[index : index + 1], Path(args.out), first_index=index)
        return 0
    with console():  # each run's log on stderr (and in its log.txt), as mmml-bench does
        table, results = run_comparison(rows, Path(args.out))
    print(table)
    agg = {label: r["aggregate"] for label, r in results.items()}
    for sel in ("best_acc", "best_loss"):
        print(
            f"fused head at the {sel} checkpoint, mean over seeds: "
            + "; ".join(
                f"{k}: Acc2 {100 * a[sel]['M']['Acc2'][0]:.2f}, MAE {a[sel]['M']['MAE'][0]:.3f}"
                for k, a in agg.items()
            )
        )
    print("fused head, lowest-valid-loss checkpoint, test MAE on echo clips / other clips:")
    for i, label in enumerate((WITHOUT, WITH)):
        folder = next(Path(args.out).glob(f"{i}-*"))
        parts = [echo_errors(folder / f"seed-{s}" / "best_loss") for s in seeds]
        echo, other = np.mean([p[0] for p in parts]), np.mean([p[1] for p in parts])
        print(f"  {label}: {echo:.3f} / {other:.3f}")
    acc = {k: a["best_acc"]["M"]["Acc2"][0] for k, a in agg.items()}
    mae = {k: a["best_loss"]["M"]["MAE"][0] for k, a in agg.items()}
    ok = acc[WITH] > acc[WITHOUT] and mae[WITH] < mae[WITHOUT]
    print("text + audio + video beats text + audio on Acc2 and MAE:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""``mmml-bench predict CHECKPOINT --text ... --audio FILE``."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["configure_parser", "run"]

HEAD_NAMES = {"M": "fused", "T": "text subnet", "A": "audio subnet"}


def configure_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.description = (
        "Predict sentiment with a checkpoint directory (seed-N/best_loss or best_acc of a run). "
        "Text and audio use every head; text or audio alone uses that modality's subnet head."
    )
    parser.add_argument("checkpoint", help="checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("--text", help="the utterance's transcript")
    parser.add_argument("--audio", help="the utterance's audio file (wav, flac, ogg, ...)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", action="store_true", help="print the predictions as JSON")


def run(args: argparse.Namespace) -> int:
    if args.text is None and args.audio is None:
        print("mmml-bench predict: error: give --text, --audio or both", file=sys.stderr)
        return 2
    from mmml_core.checkpoint import CheckpointError
    from mmml_core.predict import predict

    try:
        preds = predict(args.checkpoint, text=args.text, audio=args.audio, device=args.device)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        print(f"mmml-bench predict: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({h: v[0] for h, v in preds.items()}))
    else:
        for head, values in preds.items():
            print(f"{head} ({HEAD_NAMES.get(head, head)}): {values[0]:+.4f}")
    return 0

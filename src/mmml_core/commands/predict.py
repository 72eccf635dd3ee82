"""``mmml-bench predict CHECKPOINT --text ... --audio FILE --video FILE [--input MODALITY=VALUE]``.

Every failure a user can cause (a missing, damaged or foreign checkpoint, a component that is
not installed, an unreadable input, a modality the checkpoint lacks, a non-finite prediction)
is exit status 2 and one line ``mmml-bench predict: error: ...`` on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

__all__ = ["configure_parser", "run"]

PROG = "mmml-bench predict"


def configure_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.description = (
        "Predict sentiment with a checkpoint directory (seed-N/best_loss or best_acc of a run). "
        "Every modality of the checkpoint uses every head; some modalities alone use their "
        "subnet heads."
    )
    parser.add_argument("checkpoint", help="checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("--text", help="the utterance's transcript (same as --input text=...)")
    parser.add_argument(
        "--audio",
        help="the utterance's audio file (wav, flac, ogg, ...; same as --input audio=FILE)",
    )
    parser.add_argument(
        "--video",
        help="the utterance's video file (mp4, ...; or a frames file of extract-frames; same "
        "as --input video=FILE)",
    )
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="MODALITY=VALUE",
        help="an input of any modality of the checkpoint, read by its encoder (repeatable)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--json", action="store_true", help="print the predictions as JSON")


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _inputs(args: argparse.Namespace) -> dict[str, str]:
    """Modality -> value from --text, --audio and --input (ValueError on a clash)."""
    inputs: dict[str, str] = {}
    given = [("text", args.text), ("audio", args.audio), ("video", args.video)]
    for item in args.input:
        modality, sep, value = item.partition("=")
        if not sep or not modality.strip():
            raise ValueError(f"--input {item!r}: expected MODALITY=VALUE, e.g. audio=clip.wav")
        given.append((modality.strip(), value))
    for modality, value in given:
        if value is None:
            continue
        if modality in inputs:
            raise ValueError(f"{modality} is given twice")
        inputs[modality] = value
    return inputs


def _check_device(name: str) -> None:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device {name}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")


def run(args: argparse.Namespace) -> int:
    try:
        inputs = _inputs(args)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        print(
            f"{PROG}: error: give --text, --audio, --video or --input MODALITY=VALUE",
            file=sys.stderr,
        )
        return 2
    from mmml_core.interfaces import head_name
    from mmml_core.predict import Predictor

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _check_device(args.device)
            predictor = Predictor(args.checkpoint, args.device)
        for w in caught:
            print(f"{PROG}: warning: {_one_line(w.message)}", file=sys.stderr)
        preds = predictor.predict(inputs=inputs)
    except (ValueError, OSError) as exc:  # CheckpointError and PredictionError are ValueErrors
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({h: v[0] for h, v in preds.items()}))
        return 0
    names = {"M": "fused"}
    for modality, encoder in predictor.model.encoders.items():
        names[head_name(encoder)] = f"{modality} subnet"
    for head, values in preds.items():
        print(f"{head} ({names.get(head, head)}): {values[0]:+.4f}")
    return 0

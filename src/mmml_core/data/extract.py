"""``mmml-bench extract-audio ROOT`` and ``mmml-bench extract-frames ROOT``: decode a dataset's
videos once.

- ``extract-audio``: ``Raw/<video>/<clip>.mp4`` -> ``wav/<video>/<clip>.wav``, 16 kHz mono
  16-bit PCM WAV, decoded and resampled by PyAV (which ships its own FFmpeg, so nothing must
  be installed system-wide).
- ``extract-frames``: ``Raw/<video>/<clip>.mp4`` -> ``frames/<video>/<clip>.npz``, the frames
  the ``video`` encoder samples (``--fps``, every ``1 / fps`` seconds over the whole clip,
  :mod:`mmml_core.data.video`), resized so that their short side is ``--size`` pixels, with
  the rate stored beside them: an encoder sampling at another rate refuses them. The reader
  uses ``frames/`` instead of ``Raw/`` once it exists (``data.video_dir``), so training does
  not decode video every epoch. Rerunning with another ``--fps`` or ``--size`` into a folder
  that holds frames made otherwise is refused (exit 2): clips would mix two settings.

Both verbs:

- Parallel: ``--workers`` processes decode clips side by side, with a progress bar.
- Resumable and atomic: each clip is written to a hidden ``.<clip>.wav.part`` file in its
  final folder and renamed into place only when complete, so an existing ``<clip>.wav`` is
  always finished and is skipped on the next run; an interrupted run leaves no half file
  under the final name.
- Failures: clips that cannot be decoded (several MOSEI videos are known to be corrupt) are
  listed on stderr and in ``wav/extract_failures.txt`` (``<Raw path>\\t<reason>`` per line).
  A later run skips the clips listed there unless ``--retry-failed`` is given, so that a
  finished extraction reruns with no work at all.
- Exit status 0 even when some clips failed (the reader then names the rows whose audio is
  missing); with ``--strict``, 1 when any clip has no WAV.

No torch import here: this verb stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

__all__ = [
    "FAILURES_FILE",
    "configure_parser",
    "extract_clip",
    "extract_frames_clip",
    "find_clips",
    "run",
]

FAILURES_FILE = "extract_failures.txt"
SAMPLE_RATE = 16_000


def configure_parser(parser: argparse.ArgumentParser, verb: str = "extract-audio") -> None:
    frames = verb == "extract-frames"
    out_dir, made = ("frames", "frames file") if frames else ("wav", "WAV")
    parser.add_argument("root", type=Path, help="dataset folder holding Raw/<video>/<clip>.mp4")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, min(8, os.cpu_count() or 1)),
        help="parallel decoding processes (default: CPU count, at most 8)",
    )
    parser.add_argument("--raw-dir", default="Raw", help="input folder under ROOT (default: Raw)")
    parser.add_argument(
        "--out-dir", default=out_dir, help=f"output folder under ROOT (default: {out_dir})"
    )
    if frames:
        parser.add_argument(
            "--fps",
            type=float,
            default=2.0,
            help="frames sampled per second of video; must equal the encoder's video.fps "
            "(default: 2, the video encoder's default)",
        )
        parser.add_argument(
            "--size",
            type=int,
            default=224,
            help="short side of the stored frames in pixels, aspect ratio kept (default: 224; "
            "0 keeps the decoded size)",
        )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help=f"try again the clips listed in <out-dir>/{FAILURES_FILE} by an earlier run",
    )
    parser.add_argument(
        "--strict", action="store_true", help=f"exit with status 1 when any clip has no {made}"
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def find_clips(raw_root: Path) -> list[Path]:
    """Every ``<video>/<clip>.mp4`` under ``raw_root``, sorted."""
    return sorted(p for p in raw_root.glob("*/*") if p.suffix.lower() == ".mp4" and p.is_file())


def extract_clip(src: str, dst: str) -> str | None:
    """Decode ``src``'s first audio stream to 16 kHz mono 16-bit WAV at ``dst``.

    Returns ``None`` on success, else the reason it failed (never raises: runs in workers).
    """
    import av  # imported in the worker, where the decoding happens
    import soundfile as sf

    dst_path = Path(dst)
    tmp = dst_path.with_name(f".{dst_path.name}.part")
    try:
        chunks: list[np.ndarray] = []
        with av.open(src) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                return "no audio stream"
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(streams[0]):
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]  # flush
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        if samples.size == 0:
            return "no audio samples decoded"
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(tmp), samples.astype(np.int16), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, dst_path)
        return None
    except Exception as exc:  # corrupt containers raise various av/OS errors
        tmp.unlink(missing_ok=True)
        return f"{type(exc).__name__}: {exc}"


def extract_frames_clip(src: str, dst: str, fps: float, size: int) -> str | None:
    """Sample ``src``'s frames at ``fps`` (short side ``size``, 0 = as decoded) into the
    frames file ``dst``. Returns ``None`` on success, else why it failed (never raises)."""
    from mmml_core.data.video import FrameError, sample_frames, write_frames

    try:
        frames = sample_frames(src, fps, None, size or None)
        write_frames(dst, frames, fps, Path(src).name, short_side=size)
        return None
    except FrameError as exc:
        return str(exc).removeprefix(f"{src}: ")
    except Exception as exc:  # an unexpected decoder or disk error: listed, not fatal
        return f"{type(exc).__name__}: {exc}"


def _frames_mismatch(out_root: Path, fps: float, size: int) -> list[str]:
    """Frames files under ``out_root`` made with another rate or size than asked."""
    from mmml_core.data.video import FrameError, frames_setting

    wrong = []
    for path in sorted(out_root.glob("*/*.npz")):
        try:
            made = frames_setting(path)
        except FrameError:
            continue  # an unreadable one is redone by nobody: the reader names it
        if made != (fps, size):
            wrong.append(f"{path} (--fps {made[0]:g} --size {made[1]})")
    return wrong


def _read_failures(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rel, _, reason = line.partition("\t")
        if rel:
            out[rel] = reason
    return out


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    root: Path = args.root
    raw_root, out_root = root / args.raw_dir, root / args.out_dir
    if not raw_root.is_dir():
        print(
            f"error: {raw_root} does not exist (expected {args.raw_dir}/<video>/<clip>.mp4)",
            file=sys.stderr,
        )
        return 2
    if args.workers < 1:
        print(f"error: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    frames = hasattr(args, "fps")
    if frames:
        if not (args.fps > 0 and args.fps != float("inf")):
            print(f"error: --fps must be a finite number > 0, got {args.fps}", file=sys.stderr)
            return 2
        if args.size < 0 or 0 < args.size < 16:
            print(f"error: --size must be 0 or at least 16, got {args.size}", file=sys.stderr)
            return 2
        wrong = _frames_mismatch(out_root, args.fps, args.size)
        if wrong:
            print(
                f"error: {out_root} holds {len(wrong)} frames file(s) made with other settings "
                f"than --fps {args.fps:g} --size {args.size}, e.g. {wrong[0]}; use another "
                "--out-dir or remove them (a folder of mixed settings would train on both)",
                file=sys.stderr,
            )
            return 2
        suffix, made = ".npz", "frames"

        def work(src: str, dst: str) -> str | None:
            return extract_frames_clip(src, dst, args.fps, args.size)
    else:
        suffix, made, work = ".wav", "WAV", extract_clip
    clips = find_clips(raw_root)
    failures_path = out_root / FAILURES_FILE
    known_failures = {} if args.retry_failed else _read_failures(failures_path)

    jobs: list[tuple[str, Path, Path]] = []  # (Raw-relative name, source, destination)
    done = skipped_failed = 0
    failed: dict[str, str] = {}
    for src in clips:
        rel = src.relative_to(root).as_posix()
        dst = out_root / src.parent.name / f"{src.stem}{suffix}"
        if dst.is_file():
            done += 1
        elif rel in known_failures:
            skipped_failed += 1
            failed[rel] = known_failures[rel]
        else:
            jobs.append((rel, src, dst))
    print(
        f"{len(clips)} clip(s) in {raw_root}: {done} already extracted, "
        f"{skipped_failed} known failure(s) skipped, {len(jobs)} to extract"
    )

    bar = tqdm(total=len(jobs), unit="clip", disable=args.no_progress or not jobs, file=sys.stderr)
    if args.workers == 1 or len(jobs) <= 1:
        for rel, src, dst in jobs:
            if (err := work(str(src), str(dst))) is not None:
                failed[rel] = err
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs))) as pool:
            extra = (args.fps, args.size) if frames else ()
            task = extract_frames_clip if frames else extract_clip
            futures = {pool.submit(task, str(s), str(d), *extra): rel for rel, s, d in jobs}
            for fut in as_completed(futures):
                if (err := fut.result()) is not None:
                    failed[futures[fut]] = err
                bar.update()
    bar.close()

    extracted = len(jobs) - (len(failed) - skipped_failed)
    print(f"extracted {extracted}, failed {len(failed)}, total with {made} {done + extracted}")
    if failed:
        out_root.mkdir(parents=True, exist_ok=True)
        tmp = failures_path.with_name(f".{FAILURES_FILE}.part")
        tmp.write_text(
            "".join(f"{rel}\t{why}\n" for rel, why in sorted(failed.items())), encoding="utf-8"
        )
        os.replace(tmp, failures_path)
        print(
            f"{len(failed)} clip(s) could not be decoded (listed in {failures_path}):",
            file=sys.stderr,
        )
        for rel, why in sorted(failed.items()):
            print(f"  {rel}: {why}", file=sys.stderr)
    elif failures_path.exists():
        failures_path.unlink()  # everything decoded now: the old list is stale
    return 1 if (args.strict and failed) else 0

"""Reader for datasets in the MMSA layout: MOSI, MOSEI, CH-SIMS and the bundled demo (DESIGN §4).

Layout::

    <root>/label.csv                         video_id, clip_id, text, label, label_T, label_A,
                                             label_V, annotation, mode
    <root>/wav/<video_id>/<clip_id>.<ext>    audio (any format soundfile reads), made from
                                             <root>/Raw/<video_id>/<clip_id>.mp4 by
                                             ``mmml-bench extract-audio``

Everything is checked once, up front, over the whole CSV: the columns, every row's ids,
``mode`` and labels (numeric, finite, in the dataset's range), duplicate ids, and that each
row's audio file exists and soundfile can read its header. All problems found are raised
together as one :class:`DatasetError` whose lines each name the file, the CSV line and the
field. A row is never dropped silently: either every row loads or the reader raises.

Ids stay strings exactly as written (CH-SIMS ``0001`` is not the number 1). ``label_T`` /
``label_A`` are used where the CSV fills them (CH-SIMS, demo); where they are empty in every
row (MOSI, MOSEI) each head's target is ``label``. A CSV that fills them in some rows only is
an error, since a silent per-row fallback would mix two kinds of targets.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from torch.utils.data import Dataset

from mmml_core.data.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, load_audio, resampled_length

__all__ = [
    "COLUMNS",
    "DEFAULT_MAX_TEXT_TOKENS",
    "KINDS",
    "SPLITS",
    "DatasetError",
    "MMSADataset",
    "MMSASplit",
    "Row",
    "demo_root",
    "load_dataset",
]

#: Dataset kinds: label scheme, label range, text language, per-modality labels required.
KINDS: dict[str, dict[str, Any]] = {
    "mosi": {"scheme": "mosi", "range": (-3.0, 3.0), "language": "en", "modality_labels": False},
    "mosei": {"scheme": "mosei", "range": (-3.0, 3.0), "language": "en", "modality_labels": False},
    "sims": {"scheme": "sims", "range": (-1.0, 1.0), "language": "zh", "modality_labels": True},
    "demo": {"scheme": "sims", "range": (-1.0, 1.0), "language": "en", "modality_labels": True},
}
SPLITS: tuple[str, ...] = ("train", "valid", "test")

#: The authors' token limits per text language (DESIGN §4); text encoders read these as
#: their default ``max_length``.
DEFAULT_MAX_TEXT_TOKENS: dict[str, int] = {"en": 96, "zh": 64}

#: The columns of ``label.csv`` in the MMSA layout, in their usual order.
COLUMNS: tuple[str, ...] = (
    "video_id",
    "clip_id",
    "text",
    "label",
    "label_T",
    "label_A",
    "label_V",
    "annotation",
    "mode",
)
_REQUIRED = ("video_id", "clip_id", "text", "label", "mode")
_MODALITY_LABELS = ("label_T", "label_A")
_MAX_LISTED = 200  # problems shown in the message; DatasetError.problems has them all


class DatasetError(ValueError):
    """A dataset folder that cannot be read as is. ``problems`` lists every issue found."""

    def __init__(self, root: Path | str, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:_MAX_LISTED]
        more = len(self.problems) - len(shown)
        lines = [f"dataset at {root}: {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in shown]
        if more:
            lines.append(f"  ... and {more} more (DatasetError.problems holds them all)")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Row:
    """One validated utterance of ``label.csv``."""

    line: int  # CSV line where the record starts (the header is line 1)
    video_id: str
    clip_id: str
    text: str
    label: float
    label_T: float
    label_A: float
    mode: str
    audio_path: Path
    audio_samples: int  # at 16 kHz, before truncation to max_audio_seconds

    @property
    def id(self) -> str:
        """The field's usual utterance id, ``video_id$_$clip_id``."""
        return f"{self.video_id}$_${self.clip_id}"


class MMSASplit(Dataset):
    """One split as a map-style dataset of raw items (see :func:`load_dataset`).

    ``lengths`` holds each item's audio sample count after truncation, for bucketing.
    """

    def __init__(self, name: str, rows: list[Row], max_audio_seconds: float | None) -> None:
        self.name = name
        self.rows = rows
        self.max_audio_seconds = max_audio_seconds
        cap = None if max_audio_seconds is None else round(max_audio_seconds * SAMPLE_RATE)
        self.lengths = np.array(
            [r.audio_samples if cap is None else min(r.audio_samples, cap) for r in rows],
            dtype=np.int64,
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        audio = load_audio(row.audio_path, SAMPLE_RATE, self.max_audio_seconds)
        return {
            "id": row.id,
            "text": row.text,
            "audio": audio,  # (N,) float32, 16 kHz mono
            "labels": {"M": row.label, "T": row.label_T, "A": row.label_A},
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rows]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    def labels(self, head: str = "M") -> np.ndarray:
        """The targets of one head (``"M"``, ``"T"`` or ``"A"``) as float32, in row order."""
        field = {"M": "label", "T": "label_T", "A": "label_A"}[head]
        return np.array([getattr(r, field) for r in self.rows], dtype=np.float32)


@dataclass
class MMSADataset:
    """A validated dataset: its kind, label scheme, language, and the three splits."""

    root: Path
    kind: str
    scheme: str  # metric scheme for mmml_core.metrics: "mosi", "mosei" or "sims"
    language: str  # "en" or "zh"
    has_modality_labels: bool  # label_T / label_A given (else every head trains on label)
    rows: list[Row]
    max_audio_seconds: float | None

    @property
    def max_text_tokens(self) -> int:
        return DEFAULT_MAX_TEXT_TOKENS[self.language]

    def split(self, name: str) -> MMSASplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        return MMSASplit(name, [r for r in self.rows if r.mode == name], self.max_audio_seconds)


def demo_root() -> Path:
    """The folder of the demo set shipped inside the package."""
    return Path(str(resources.files("mmml_core.data") / "demo"))


def load_dataset(
    root: str | os.PathLike[str] | None,
    kind: str,
    *,
    max_audio_seconds: float | None = 6.0,
    audio_dir: str = "wav",
) -> MMSADataset:
    """Read and validate the dataset at ``root`` (``None`` with kind ``"demo"``: the bundled one).

    ``max_audio_seconds`` (default 6, the authors' setting) truncates every clip when it
    is loaded; ``None`` keeps whole clips. Raises :class:`DatasetError` listing every problem.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {list(KINDS)}")
    if root is None:
        if kind != "demo":
            raise ValueError(f"dataset kind {kind!r} needs a root folder")
        root = demo_root()
    root = Path(root).expanduser()
    spec = KINDS[kind]
    csv_path = root / "label.csv"
    if not root.is_dir():
        raise DatasetError(root, [f"{root}: folder does not exist"])
    if not csv_path.is_file():
        raise DatasetError(root, [f"{csv_path}: file does not exist"])
    audio_root = root / audio_dir
    records, has_modality_labels, problems = _read_csv(csv_path, spec, audio_root)
    if problems:
        raise DatasetError(root, problems)
    return MMSADataset(
        root=root,
        kind=kind,
        scheme=spec["scheme"],
        language=spec["language"],
        has_modality_labels=has_modality_labels,
        rows=[Row(**r) for r in records],
        max_audio_seconds=max_audio_seconds,
    )


def _read_csv(
    csv_path: Path, spec: dict[str, Any], audio_root: Path
) -> tuple[list[dict[str, Any]], bool, list[str]]:
    problems: list[str] = []

    def problem(line: int, field: str, message: str) -> None:
        problems.append(f"{csv_path} line {line}, field '{field}': {message}")

    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return [], False, [f"{csv_path} line 1: file is empty (expected a header row)"]
        header = [h.strip() for h in header]
        required = _REQUIRED + (_MODALITY_LABELS if spec["modality_labels"] else ())
        missing = [c for c in required if c not in header]
        for c in missing:
            problem(1, c, f"column is missing; the header has {header}")
        if missing:
            return [], False, problems
        col = {name: header.index(name) for name in header}
        raw: list[tuple[int, list[str]]] = []
        start = 2
        for fields in reader:
            raw.append((start, fields))
            start = reader.line_num + 1

    lo, hi = spec["range"]
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    modes: set[str] = set()
    for line, fields in raw:
        if not fields:
            continue  # a blank line holds no record (a line of empty fields is checked)
        if len(fields) != len(header):
            problem(line, "*", f"expected {len(header)} fields, found {len(fields)}")
            continue
        rec = {name: fields[i] for name, i in col.items()}
        video_id, clip_id = rec["video_id"].strip(), rec["clip_id"].strip()
        for name, value in (("video_id", video_id), ("clip_id", clip_id)):
            if not value:
                problem(line, name, "is empty")
        mode = rec["mode"].strip()
        modes.add(mode)
        if mode not in SPLITS:
            problem(line, "mode", f"unknown mode {rec['mode']!r} (expected train, valid or test)")
        labels: dict[str, float | None] = {}
        for name in ("label", *_MODALITY_LABELS):
            text = rec.get(name, "").strip()
            labels[name] = None  # an empty per-modality label is resolved below
            if not text and name != "label":
                continue
            try:
                value = float(text)
            except ValueError:
                problem(line, name, f"is not a number: {text!r}")
                labels[name] = math.nan  # filled, but bad
                continue
            if not math.isfinite(value) or not lo <= value <= hi:
                problem(line, name, f"{value} is outside [{lo:g}, {hi:g}]")
            labels[name] = value
        uid = f"{video_id}$_${clip_id}"
        if video_id and clip_id and uid in seen:
            problem(line, "video_id/clip_id", f"duplicate id {uid!r} (first on line {seen[uid]})")
        seen.setdefault(uid, line)
        records.append(
            {
                "line": line,
                "video_id": video_id,
                "clip_id": clip_id,
                "text": rec["text"],
                "label": labels["label"],
                "label_T": labels["label_T"],
                "label_A": labels["label_A"],
                "mode": mode,
            }
        )

    has_modality_labels = _resolve_modality_labels(records, problem, spec["modality_labels"])
    for split in SPLITS:
        if split not in modes:
            problems.append(f"{csv_path}: no row has mode '{split}'")
    _check_audio(
        [r for r in records if r["video_id"] and r["clip_id"]], audio_root, problem, problems
    )
    return records, has_modality_labels, problems


def _resolve_modality_labels(records: list[dict[str, Any]], problem: Any, required: bool) -> bool:
    """Fill label_T/label_A from label where no row gives them; True where rows give them."""
    given = True
    for name in _MODALITY_LABELS:
        filled = sum(r[name] is not None for r in records)
        if filled == 0 and not required:
            for r in records:  # MOSI/MOSEI: every head trains on the overall label
                r[name] = r["label"]
            given = False
            continue
        for r in records:
            if r[name] is None:
                why = (
                    "is required for this dataset kind"
                    if required
                    else (f"is empty here but filled in {filled} other row(s)")
                )
                problem(r["line"], name, why)
    return given


def _check_audio(
    records: list[dict[str, Any]], audio_root: Path, problem: Any, problems: list[str]
) -> None:
    if not audio_root.is_dir():
        problems.append(
            f"{audio_root}: audio folder does not exist (make it from Raw/ with "
            f"`mmml-bench extract-audio {audio_root.parent}`)"
        )
        return
    listing: dict[str, dict[str, list[str]]] = {}  # video_id -> clip stem -> file names
    for r in records:
        vid = r["video_id"]
        if vid not in listing:
            listing[vid] = {}
            video_dir = audio_root / vid
            names = sorted(os.listdir(video_dir)) if video_dir.is_dir() else []
            for name in names:
                stem, ext = os.path.splitext(name)
                if ext.lower() in AUDIO_EXTENSIONS:
                    listing[vid].setdefault(stem, []).append(name)
    todo: list[dict[str, Any]] = []
    for r in records:
        names = listing[r["video_id"]].get(r["clip_id"], [])
        where = audio_root / r["video_id"] / r["clip_id"]
        if not names:
            problem(r["line"], "audio", f"no audio file {where}.* ({'/'.join(AUDIO_EXTENSIONS)})")
            r["audio_path"] = None
        elif len(names) > 1:
            problem(
                r["line"], "audio", f"several audio files for one clip: {names} in {where.parent}"
            )
            r["audio_path"] = None
        else:
            r["audio_path"] = where.parent / names[0]
            todo.append(r)

    def info(r: dict[str, Any]) -> str | None:
        try:
            i = sf.info(str(r["audio_path"]))
        except Exception as exc:  # soundfile raises several types for broken files
            return f"unreadable audio {r['audio_path']}: {exc}"
        if i.frames <= 0 or i.samplerate <= 0:
            return f"audio {r['audio_path']} is empty (0 samples)"
        r["audio_samples"] = resampled_length(i.frames, i.samplerate, SAMPLE_RATE)
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:  # header reads are I/O bound
        for r, err in zip(todo, pool.map(info, todo), strict=True):
            if err is not None:
                problem(r["line"], "audio", err)

"""Reader for datasets in the MMSA layout: MOSI, MOSEI, CH-SIMS and the bundled demo (docs/data.md).

Layout::

    <root>/label.csv                         video_id, clip_id, text, label, label_T, label_A,
                                             label_V, annotation, mode
    <root>/wav/<video_id>/<clip_id>.<ext>    audio (any format soundfile reads), made from
                                             <root>/Raw/<video_id>/<clip_id>.mp4 by
                                             ``mmml-bench extract-audio``
    <root>/Raw/<video_id>/<clip_id>.mp4      video (the ``video`` modality), or the frames
    <root>/frames/<video_id>/<clip_id>.npz   ``mmml-bench extract-frames`` decoded once

Everything a run uses is checked once, up front, over the whole CSV: the columns, every
row's ids, ``mode`` and labels (numeric, finite, in the dataset's range), duplicate ids, and,
when audio is loaded, that each row's audio file exists and soundfile can read its header,
and when video is loaded, that each row has one video (or frames) file that opens and decodes
its first frame (or whose header holds frames).
Only the loaded modalities are checked: a text-only run needs neither ``wav/`` nor the audio
files, an audio-only run needs no ``text`` column. All problems found are raised together as
one :class:`DatasetError` whose lines each name the file, the CSV line and the field. A row
is never dropped silently: either every row loads or the reader raises (``max_items`` keeps
fewer on purpose, after the whole CSV has been validated). The one exception is asked for:
with ``skip_unusable`` a row whose own audio or video file is missing, empty or unreadable is
dropped and listed in :attr:`MMSADataset.dropped` (schema problems still raise).

Video (``video_dir``): ``"auto"`` reads ``frames/`` when that folder exists (every row must
then have its frames file there: a half-finished extraction is an error, not a mix), else
``Raw/``; any other value names the folder under the root. Each item's ``video`` is the
file's path, decoded by the encoder (:mod:`mmml_core.data.video`). ``label_V`` is read when
video is loaded, with the same all-or-nothing rule as ``label_T`` / ``label_A``; it is the
target of the ``V`` head.

Texts are re-cased (``text[0] + text[1:].lower()``, the authors' fix for the upper-case
MOSI/MOSEI transcripts) once, on load, by ``recase``: ``"on"`` every text, ``"off"`` none,
``"auto"`` (the default) only English datasets whose transcripts are upper case by
:func:`upper_case_transcripts`. The count goes into the data report.

Ids stay strings exactly as written (CH-SIMS ``0001`` is not the number 1). ``label_T`` /
``label_A`` are used where the CSV fills them (CH-SIMS, demo); where they are empty in every
row (MOSI, MOSEI) each head's target is ``label``. A CSV that fills them in some rows only is
an error, since a silent per-row fallback would mix two kinds of targets.

The dataset kinds themselves (``mosi``, ``sims``, ...) are registry components defined in
:mod:`mmml_core.data.kinds`; :func:`load_dataset` reaches any registered kind by name.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from torch.utils.data import Dataset

from mmml_core.data.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, load_audio, resampled_length
from mmml_core.data.kinds import DatasetError
from mmml_core.data.video import FRAMES_DIR, FRAMES_EXTENSION, VIDEO_EXTENSIONS

__all__ = [
    "COLUMNS",
    "DEFAULT_MAX_TEXT_TOKENS",
    "MMSA_HEADS",
    "SPLITS",
    "DatasetError",
    "MMSADataset",
    "MMSASplit",
    "Row",
    "demo_root",
    "load_dataset",
    "read_mmsa",
    "recase_text",
    "upper_case_transcripts",
]

SPLITS: tuple[str, ...] = ("train", "valid", "test")

#: The authors' token limits per text language (docs/paper.md); text encoders read these as
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
#: Label names every MMSA item carries: M from ``label``, T and A from ``label_T`` and
#: ``label_A`` (or ``label`` where the CSV leaves them empty in every row).
MMSA_HEADS: tuple[str, ...] = ("M", "T", "A")
_REQUIRED = ("video_id", "clip_id", "label", "mode")  # plus "text" when text is loaded

#: ``recase="auto"`` calls a dataset's transcripts upper case when at least this share of
#: its texts that have cased letters has no lower-case letter. A share, not "every text":
#: MOSI/MOSEI transcripts are upper case but a few carry a stray lower-case tag or name.
UPPER_CASE_SHARE = 0.9

#: The CMU-MOSEI clips (``video_id/clip_id``) whose audio the authors found unusable and
#: dropped; named in the error hint for MOSEI-scored datasets (docs/data.md).
MOSEI_UNUSABLE = (
    "3aIQUQgawaI/12",
    "94ULum9MYX0/2",
    "mRnEJOLkhp8/24",
    "aE-X_QdDaqQ/3",
    "94ULum9MYX0/11",
    "mRnEJOLkhp8/26",
)
_MODALITY_LABELS = ("label_T", "label_A")
#: ``video_dir="auto"``: this folder when it exists, else :data:`RAW_DIR`.
RAW_DIR = "Raw"


@dataclass(frozen=True)
class Row:
    """One validated utterance of ``label.csv``; the audio fields are set when audio is loaded."""

    line: int  # CSV line where the record starts (the header is line 1)
    video_id: str
    clip_id: str
    text: str
    label: float
    label_T: float
    label_A: float
    mode: str
    audio_path: Path | None = None
    audio_samples: int | None = None  # at 16 kHz, before the cut to max_audio_seconds
    audio_rate: int | None = None  # the file's sample rate
    audio_channels: int | None = None  # the file's channel count
    label_V: float | None = None  # set when video is loaded (label_V, else label)
    video_path: Path | None = None  # the clip's video or frames file, when video is loaded
    video_fps: float | None = None  # a frames file's rate (None: a video file)
    video_frames: int | None = None  # a frames file's frame count (None: a video file)

    @property
    def id(self) -> str:
        """The field's usual utterance id, ``video_id$_$clip_id``."""
        return f"{self.video_id}$_${self.clip_id}"


def _cap(max_audio_seconds: float | None) -> int | None:
    return None if max_audio_seconds is None else round(max_audio_seconds * SAMPLE_RATE)


class MMSASplit(Dataset):
    """One split as a map-style dataset of raw items (see :func:`read_mmsa`).

    ``lengths`` holds, per item, the audio sample count after the cut when audio is loaded,
    else the text length in characters: what the length-bucketed sampler groups by.
    """

    def __init__(
        self,
        name: str,
        rows: list[Row],
        max_audio_seconds: float | None,
        modalities: Sequence[str] = ("text", "audio"),
        context: Mapping[str, int] | None = None,
        context_order: str = "clip",
    ) -> None:
        from mmml_core.data.context import previous_indices

        self.name = name
        self.rows = rows
        self.max_audio_seconds = max_audio_seconds
        self.modalities = tuple(modalities)
        # modality -> per item, the indices of its context rows, oldest first
        self.context = {
            m: previous_indices(
                [r.video_id for r in rows], [r.clip_id for r in rows], window, context_order
            )
            for m, window in (context or {}).items()
            if window > 0
        }
        measure = (
            self.previews("audio") if "audio" in self.modalities else [len(r.text) for r in rows]
        )
        self.lengths = np.array(measure, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        item: dict[str, Any] = {"id": row.id}
        if "text" in self.modalities:
            item["text"] = row.text
        if "audio" in self.modalities:  # (N,) float32, 16 kHz mono
            item["audio"] = load_audio(row.audio_path, SAMPLE_RATE, self.max_audio_seconds)
        if "video" in self.modalities:  # the file's path: the encoder decodes it
            item["video"] = str(row.video_path)
        item["labels"] = {"M": row.label, "T": row.label_T, "A": row.label_A}
        if "video" in self.modalities:
            item["labels"]["V"] = row.label_V
        if self.context:
            item["context"] = {m: self._context(m, ids[index]) for m, ids in self.context.items()}
        return item

    def _context(self, modality: str, indices: Sequence[int]) -> list[Any]:
        """The raw items of ``modality`` of the context rows, oldest first; audio clips are
        read up to ``max_audio_seconds`` in all (what the encoder keeps of their
        concatenation), so a clip beyond it is not read."""
        rows = [self.rows[i] for i in indices]
        if modality == "text":
            return [r.text for r in rows]
        cap = _cap(self.max_audio_seconds)
        waves = []
        for r in rows:
            left = None if cap is None else cap - sum(len(w) for w in waves)
            if left is not None and left <= 0:
                break
            wave = load_audio(
                r.audio_path, SAMPLE_RATE, None if left is None else left / SAMPLE_RATE
            )
            waves.append(wave[:left] if left is not None else wave)
        return waves

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def only(self, modalities: Sequence[str]) -> MMSASplit:
        """The same rows and ``lengths``, whose items carry only ``modalities`` (the feature
        cache serves the others, so their files are not read)."""
        view = copy.copy(self)
        view.modalities = tuple(m for m in self.modalities if m in modalities)
        return view

    def previews(self, modality: str) -> list[Any]:
        """Per item, what can be told of ``modality`` without decoding: the text itself, the
        audio's 16 kHz sample count after the cut to ``max_audio_seconds``, or the video's
        ``{"path", "fps", "frames"}`` (``fps`` and ``frames`` of a frames file, else None)."""
        if modality not in self.modalities:
            raise ValueError(
                f"modality {modality!r} is not loaded; loaded: {', '.join(self.modalities)}"
            )
        if modality == "text":
            return [r.text for r in self.rows]
        if modality == "video":
            return [
                {"path": str(r.video_path), "fps": r.video_fps, "frames": r.video_frames}
                for r in self.rows
            ]
        cap = _cap(self.max_audio_seconds)
        return [
            r.audio_samples if cap is None else min(r.audio_samples, cap)  # type: ignore[type-var]
            for r in self.rows
        ]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rows]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rows]

    def labels(self, head: str = "M") -> np.ndarray:
        """The targets of one head (``"M"``, ``"T"``, ``"A"``, or ``"V"`` when video is
        loaded) as float32, in row order."""
        column = {"M": "label", "T": "label_T", "A": "label_A", "V": "label_V"}[head]
        if head == "V" and "video" not in self.modalities:
            raise ValueError("label V is read only when the video modality is loaded")
        return np.array([getattr(r, column) for r in self.rows], dtype=np.float32)


@dataclass
class MMSADataset:
    """A validated dataset: its kind, label scheme, language, and the three splits."""

    root: Path
    kind: str
    scheme: str  # metric scheme for mmml_core.metrics: "mosi", "mosei" or "sims"
    language: str  # "en" or "zh"
    has_modality_labels: bool  # label_T / label_A given (else every head trains on label)
    rows: list[Row]  # the kept rows (all unless max_items), in file order
    max_audio_seconds: float | None
    modalities: tuple[str, ...] = ("text", "audio")  # the loaded ones
    #: What loading does to the kept rows' audio, e.g. ``{"clips resampled to 16 kHz": 3}``;
    #: counted from the file headers read during validation, zero counts left out.
    report: dict[str, int] = field(default_factory=dict)
    heads: tuple[str, ...] = MMSA_HEADS  # plus "V" when video is loaded
    #: Rows left out because their audio or video is unusable (``skip_unusable``), in file order:
    #: ``{"video_id", "clip_id", "mode", "line", "reason", "fields"}`` each (fields: audio,
    #: video); empty otherwise.
    dropped: list[dict[str, Any]] = field(default_factory=list)
    #: modality -> context window (data.text_context, data.audio_context); empty = none
    context: dict[str, int] = field(default_factory=dict)
    context_order: str = "clip"  # data.context_order (mmml_core.data.context)

    @property
    def max_text_tokens(self) -> int:
        return DEFAULT_MAX_TEXT_TOKENS[self.language]

    def split(self, name: str) -> MMSASplit:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        rows = [r for r in self.rows if r.mode == name]
        return MMSASplit(
            name, rows, self.max_audio_seconds, self.modalities, self.context, self.context_order
        )


def demo_root() -> Path:
    """The folder of the demo set shipped inside the package."""
    return Path(str(resources.files("mmml_core.data") / "demo"))


def load_dataset(
    root: str | os.PathLike[str] | None,
    kind: str,
    *,
    modalities: Sequence[str] | None = None,
    max_audio_seconds: float | None = 6.0,
    max_items: int | None = None,
    recase: str = "auto",
    skip_unusable: bool = False,
    text_context: int = 0,
    audio_context: int = 0,
    context_order: str = "clip",
    video_dir: str = "auto",
    **options: Any,
) -> Any:
    """Read and validate the dataset at ``root`` as the registered dataset kind ``kind``.

    A thin wrapper over ``registry.create("dataset", kind, **options).load(...)``; ``root``
    may be ``None`` for bundled kinds (``"demo"``). ``modalities`` defaults to those a run
    uses by default: the keys of the kind's ``default_encoders`` (text and audio for the MMSA
    kinds; video is loaded when asked for), or every modality it provides where it names no
    default encoders. ``options`` are the kind's ``Config`` fields (MMSA kinds:
    ``audio_dir``). ``max_audio_seconds`` (default 6, the authors' setting) cuts every clip
    when it is loaded; ``None`` keeps whole clips. ``recase`` and ``skip_unusable`` are
    ``data.recase`` and ``data.skip_unusable`` (see :func:`read_mmsa`), passed to a kind
    whose ``load`` takes them. Raises :class:`DatasetError` listing every problem, and
    ``ValueError`` for a kind nobody registered or one that does not take a value given.
    """
    from mmml_core import registry
    from mmml_core.data.kinds import load_options

    try:
        cls = registry.load("dataset", kind)
    except registry.UnknownComponentError:
        known = ", ".join(registry.list("dataset")) or "(none)"
        raise ValueError(f"unknown dataset kind {kind!r}; registered kinds: {known}") from None
    source = registry.create("dataset", kind, **options)
    extra, refused = load_options(
        source,
        recase=recase,
        skip_unusable=skip_unusable,
        text_context=text_context,
        audio_context=audio_context,
        context_order=context_order,
        video_dir=video_dir,
    )
    if refused:
        raise ValueError(
            f"dataset kind {kind!r} does not support {', '.join(refused)} (its load() takes "
            "no such argument)"
        )
    return source.load(
        root,
        modalities=_default_modalities(cls) if modalities is None else modalities,
        max_audio_seconds=max_audio_seconds,
        max_items=max_items,
        **extra,
    )


def _default_modalities(cls: Any) -> tuple[str, ...]:
    defaults = tuple(getattr(cls, "default_encoders", {}) or ())
    return tuple(m for m in defaults if m in cls.modalities) or tuple(cls.modalities)


def read_mmsa(
    root: Path,
    *,
    kind: str,
    scheme: str,
    language: str,
    label_range: tuple[float, float],
    modality_labels: bool,
    modalities: Sequence[str],
    max_audio_seconds: float | None = 6.0,
    max_items: int | None = None,
    audio_dir: str = "wav",
    recase: str = "auto",
    skip_unusable: bool = False,
    text_context: int = 0,
    audio_context: int = 0,
    context_order: str = "clip",
    video_dir: str = "auto",
) -> MMSADataset:
    """Read and validate the MMSA-layout folder ``root`` for ``modalities`` (a subset of
    text, audio and video, already checked by the kind).

    ``modality_labels``: label_T / label_A are required in every row. ``max_items`` keeps the
    first N rows of each split in file order, after validating them all (and after dropping
    unusable rows). ``recase``: ``"on"`` re-cases every text as ``text[0] +
    text[1:].lower()``, ``"off"`` none, ``"auto"`` only where ``language`` is ``"en"`` and
    :func:`upper_case_transcripts` holds over every text of the CSV. ``skip_unusable``: a
    row whose audio or video file is missing, empty or unreadable (its header, a video's
    first frame) is dropped and listed in ``dropped`` instead of being a problem; a split
    left without rows is still one. ``video_dir``: the video folder under ``root``
    (``"auto"``: ``frames`` where it exists, else ``Raw``; module docstring).
    ``text_context`` / ``audio_context``: each item also carries the texts / clips of that
    many earlier utterances of its video in its split (``item["context"]``, oldest first, in
    ``context_order``: :mod:`mmml_core.data.context`).
    """
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be at least 1 (or None for all), got {max_items}")
    if recase not in ("auto", "on", "off"):
        raise ValueError(f"recase must be 'auto', 'on' or 'off', got {recase!r}")
    if max_audio_seconds is not None and not max_audio_seconds > 0:
        raise ValueError(f"max_audio_seconds must be positive, got {max_audio_seconds}")
    modalities = tuple(modalities)
    context = {"text": text_context, "audio": audio_context}
    for m, window in context.items():
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ValueError(f"{m}_context must be an integer >= 0, got {window!r}")
        if window and m not in modalities:
            raise ValueError(f"{m}_context={window}, but the run does not load {m}")
    from mmml_core.data.context import CONTEXT_ORDERS

    if context_order not in CONTEXT_ORDERS:
        raise ValueError(
            f"context_order must be one of {', '.join(CONTEXT_ORDERS)}, got {context_order!r}"
        )
    csv_path = root / "label.csv"
    if not _is_dir(root):
        what = "is not a folder" if os.path.lexists(root) else "folder does not exist"
        raise DatasetError(root, [f"{root}: {what}"])
    text, problems = _read_text(csv_path)
    if problems:
        raise DatasetError(root, problems)
    if not isinstance(video_dir, str) or not video_dir.strip():
        raise ValueError(f"video_dir must be 'auto' or a folder name, got {video_dir!r}")
    records, has_modality_labels, problems = _parse_csv(
        csv_path,
        text,
        label_range,
        modality_labels,
        with_text="text" in modalities,
        with_video="video" in modalities,
    )
    unusable: list[tuple[dict[str, Any], str, str]] = []  # (record, modality, what is wrong)
    ok = [r for r in records if r["video_id"] and r["clip_id"]]
    if "audio" in modalities and records:
        found = _check_audio(ok, root / audio_dir, csv_path, problems)
        unusable += [(r, "audio", m) for r, m in found]
    video_folder = None
    if "video" in modalities and records:
        video_folder = _video_folder(root, video_dir)
        found = _check_video(ok, video_folder, csv_path, problems, auto=video_dir == "auto")
        unusable += [(r, "video", m) for r, m in found]
    unusable.sort(key=lambda u: u[0]["line"])
    hint = None
    if unusable and not skip_unusable:
        problems += [f"{csv_path} line {r['line']}, field '{f}': {m}" for r, f, m in unusable]
        hint = _skip_hint(unusable, scheme)
    if problems:
        raise DatasetError(root, problems, hint=hint)
    reason = None  # decided over every row of the CSV, dropped ones and all
    if "text" in modalities:
        reason = _recase_reason(recase, language, [r["text"] for r in records])
    by_line: dict[int, dict[str, Any]] = {}
    for r, f, m in unusable:  # one entry per row, its reasons joined
        if r["line"] in by_line:
            by_line[r["line"]]["reason"] += f"; {m}"
            by_line[r["line"]]["fields"].append(f)
            continue
        by_line[r["line"]] = {
            "video_id": r["video_id"],
            "clip_id": r["clip_id"],
            "mode": r["mode"],
            "line": r["line"],
            "reason": m,
            "fields": [f],  # the unusable modalities' files
        }
    dropped = list(by_line.values())
    if dropped:
        gone = {d["line"] for d in dropped}
        records = [r for r in records if r["line"] not in gone]
        empty = [s for s in SPLITS if not any(r["mode"] == s for r in records)]
        if empty:
            raise DatasetError(
                root,
                [
                    f"{csv_path}: no row of split '{s}' is left: every one has unusable "
                    f"{_what(unusable)} ({len(dropped)} row(s) dropped by skip_unusable in all)"
                    for s in empty
                ],
            )
    recased: set[int] = set()
    if reason is not None:
        for r in records:
            new = recase_text(r["text"])
            if new != r["text"]:
                r["text"] = new
                recased.add(r["line"])
    rows = _first_of_each_split([Row(**r) for r in records], max_items)
    report: dict[str, int] = {}
    if dropped:  # over the whole CSV, like the list
        for m in ("audio", "video"):
            n = len({r["line"] for r, f, _ in unusable if f == m})
            if n:
                report[f"rows dropped (unusable {m})"] = n
    n_recased = sum(r.line in recased for r in rows)
    if n_recased:
        report[f"texts re-cased ({reason})"] = n_recased
    if "audio" in modalities:
        report.update(_audio_report(rows, max_audio_seconds))
    if video_folder is not None:
        frames = sum(r.video_fps is not None for r in rows)
        if frames:
            report[f"clips read from extracted frames ({video_folder.name}/)"] = frames
        if len(rows) - frames:
            report[f"clips decoded from video files ({video_folder.name}/)"] = len(rows) - frames
    windows = {m: w for m, w in context.items() if w}
    if windows:
        from mmml_core.data.context import previous_indices

        first = 0
        for split in SPLITS:
            part = [r for r in rows if r.mode == split]
            prev = previous_indices(
                [r.video_id for r in part], [r.clip_id for r in part], 1, context_order
            )
            first += sum(not p for p in prev)
        if first:
            report["items without an earlier utterance (empty context)"] = first
    return MMSADataset(
        root=root,
        kind=kind,
        scheme=scheme,
        language=language,
        has_modality_labels=has_modality_labels,
        rows=rows,
        max_audio_seconds=max_audio_seconds,
        modalities=modalities,
        report=report,
        heads=MMSA_HEADS + (("V",) if "video" in modalities else ()),
        dropped=dropped,
        context=windows,
        context_order=context_order,
    )


def recase_text(text: str) -> str:
    """The authors' re-casing of an English transcript: the first character kept, the rest
    lower-cased (``"A LOT OF SAD PARTS"`` -> ``"A lot of sad parts"``)."""
    return text[:1] + text[1:].lower()


def upper_case_transcripts(texts: Sequence[str]) -> bool:
    """Whether a dataset's transcripts are upper case: at least :data:`UPPER_CASE_SHARE` of
    the texts that have a cased letter (any letter with an upper and a lower form, so not
    Chinese characters) have no lower-case letter. False where no text has a cased letter."""
    cased = [t for t in texts if any(c.isupper() or c.islower() for c in t)]
    if not cased:
        return False
    upper = sum(not any(c.islower() for c in t) for t in cased)
    return upper >= UPPER_CASE_SHARE * len(cased)


def _recase_reason(mode: str, language: str, texts: Sequence[str]) -> str | None:
    """Why texts are re-cased (the data report's wording), or None when they are not."""
    if mode == "on":
        return "data.recase=on"
    if mode == "auto" and language == "en" and upper_case_transcripts(texts):
        return "upper-case transcripts"
    return None


def _what(unusable: Sequence[tuple[Any, str, str]]) -> str:
    """ "audio", "video" or "audio or video": what the unusable rows lack."""
    kinds = sorted({f for _, f, _ in unusable})
    return " or ".join(kinds) if kinds else "audio"


def _skip_hint(unusable: Sequence[tuple[dict[str, Any], str, str]], scheme: str) -> str:
    n = len({r["line"] for r, _, _ in unusable})
    hint = (
        f"{n} row(s) have missing, empty or unreadable {_what(unusable)}: provide it, or set "
        "data.skip_unusable=true to drop such clips (the run lists them)"
    )
    if scheme == "mosei":
        hint += (
            "; CMU-MOSEI has six clips whose audio is unusable, which the authors drop: "
            + ", ".join(MOSEI_UNUSABLE)
        )
    return hint


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # e.g. a parent without search permission
        return False


def _read_text(csv_path: Path) -> tuple[str, list[str]]:
    """The whole of ``label.csv`` as text, or the problems that prevent reading it."""
    try:
        data = csv_path.read_bytes()
    except FileNotFoundError:
        return "", [f"{csv_path}: file does not exist"]
    except IsADirectoryError:
        return "", [f"{csv_path}: is a folder, not a file"]
    except OSError as exc:  # permission denied, I/O error, ...
        reason = exc.strerror or type(exc).__name__
        return "", [f"{csv_path}: cannot be read: {reason}"]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start : exc.end]
        return "", [
            f"{csv_path} line {line}: not UTF-8 text (byte {bad!r} at offset {exc.start}); "
            "save the file as UTF-8"
        ]


def _parse_csv(
    csv_path: Path,
    text: str,
    label_range: tuple[float, float],
    modality_labels: bool,
    with_text: bool,
    with_video: bool = False,
) -> tuple[list[dict[str, Any]], bool, list[str]]:
    problems: list[str] = []

    def problem(line: int, field: str, message: str) -> None:
        problems.append(f"{csv_path} line {line}, field '{field}': {message}")

    reader = csv.reader(io.StringIO(text, newline=""))
    raw: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, None)
        if header is None:
            return [], False, [f"{csv_path} line 1: file is empty (expected a header row)"]
        header = [h.strip() for h in header]
        label_names = _MODALITY_LABELS + (("label_V",) if with_video else ())
        required = (
            _REQUIRED + (("text",) if with_text else ()) + (label_names if modality_labels else ())
        )
        missing = [c for c in required if c not in header]
        for c in missing:
            problem(1, c, f"column is missing; the header has {header}")
        if missing:
            return [], False, problems
        start = 2
        for fields in reader:
            raw.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:  # e.g. a quoted field never closed
        return [], False, [f"{csv_path} line {reader.line_num}: not readable as CSV: {exc}"]
    col = {name: header.index(name) for name in header}

    lo, hi = label_range
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
        for name in ("label", *label_names):
            value_text = rec.get(name, "").strip()
            labels[name] = None  # an empty per-modality label is resolved below
            if not value_text and name != "label":
                continue
            try:
                value = float(value_text)
            except ValueError:
                problem(line, name, f"is not a number: {value_text!r}")
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
                "text": rec.get("text", ""),
                "label": labels["label"],
                "label_T": labels["label_T"],
                "label_A": labels["label_A"],
                **({"label_V": labels["label_V"]} if with_video else {}),
                "mode": mode,
            }
        )

    has_modality_labels = _resolve_modality_labels(
        records, problem, modality_labels, _MODALITY_LABELS
    )
    if with_video:  # label_V: the same rule, on its own (has_modality_labels is T and A)
        _resolve_modality_labels(records, problem, modality_labels, ("label_V",))
    for split in SPLITS:
        if split not in modes:
            problems.append(f"{csv_path}: no row has mode '{split}'")
    return records, has_modality_labels, problems


def _resolve_modality_labels(
    records: list[dict[str, Any]], problem: Any, required: bool, names: Sequence[str]
) -> bool:
    """Fill each of ``names`` (label_T, ...) from label where no row gives it; True where rows
    give them all."""
    given = True
    for name in names:
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


def _list_folder(path: Path) -> tuple[list[str] | None, str | None]:
    """``(names, None)``; ``(None, None)`` where ``path`` is no folder; ``(None, problem)``
    where it exists but cannot be listed."""
    try:
        return sorted(os.listdir(path)), None
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as exc:  # permission denied, I/O error, ...
        return None, f"{path}: cannot list this folder: {exc.strerror or type(exc).__name__}"


def _locate(
    records: list[dict[str, Any]],
    folder: Path,
    extensions: Sequence[str],
    field: str,
    missing: str,
    csv_path: Path,
    problems: list[str],
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Each record's one file ``folder/<video_id>/<clip_id>.<ext>`` (``ext`` in
    ``extensions``), set as ``record[f"{field}_path"]``. Returns the records with a file and
    those without one (with what is wrong); a missing or unlistable folder (``missing`` says
    how to make it) and several files for one clip go to ``problems``."""
    unusable: list[tuple[dict[str, Any], str]] = []
    names, error = _list_folder(folder)
    if error is not None or names is None:
        problems.append(error or f"{folder}: {field} folder does not exist ({missing})")
        return [], unusable
    listing: dict[str, dict[str, list[str]] | None] = {}  # video_id -> stem -> file names
    for r in records:
        vid = r["video_id"]
        if vid in listing:
            continue
        names, error = _list_folder(folder / vid)
        if error is not None:  # one problem for the folder, none for each of its clips
            problems.append(error)
            listing[vid] = None
            continue
        listing[vid] = {}
        for name in names or []:
            stem, ext = os.path.splitext(name)
            if ext.lower() in extensions and not name.startswith("."):
                listing[vid].setdefault(stem, []).append(name)
    found_records: list[dict[str, Any]] = []
    for r in records:
        clips = listing[r["video_id"]]
        if clips is None:
            continue
        found = clips.get(r["clip_id"], [])
        where = folder / r["video_id"] / r["clip_id"]
        if not found:
            kinds = "/".join(e.lstrip(".") for e in extensions)
            unusable.append((r, f"no {field} file {where}.* ({kinds})"))
        elif len(found) > 1:
            problems.append(
                f"{csv_path} line {r['line']}, field '{field}': several {field} files for one "
                f"clip: {found} in {where.parent}"
            )
        else:
            r[f"{field}_path"] = where.parent / found[0]
            found_records.append(r)
    return found_records, unusable


def _check_audio(
    records: list[dict[str, Any]], audio_root: Path, csv_path: Path, problems: list[str]
) -> list[tuple[dict[str, Any], str]]:
    """Find each record's audio file and read its header; sets the records' audio fields.

    Returns the records whose own audio is unusable (no file, an unreadable or empty one),
    each with what is wrong, for the caller to report or drop; other problems (the folders,
    several files for one clip) go to ``problems``."""
    missing = f"make it from Raw/ with `mmml-bench extract-audio {audio_root.parent}`"
    todo, unusable = _locate(
        records, audio_root, AUDIO_EXTENSIONS, "audio", missing, csv_path, problems
    )

    def info(r: dict[str, Any]) -> str | None:
        try:
            i = sf.info(str(r["audio_path"]))
        except Exception as exc:  # soundfile raises several types for broken files
            return f"unreadable audio {r['audio_path']}: {exc}"
        if i.frames <= 0 or i.samplerate <= 0:
            return f"audio {r['audio_path']} is empty (0 samples)"
        r["audio_samples"] = resampled_length(i.frames, i.samplerate, SAMPLE_RATE)
        r["audio_rate"] = i.samplerate
        r["audio_channels"] = i.channels
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:  # header reads are I/O bound
        for r, err in zip(todo, pool.map(info, todo), strict=True):
            if err is not None:
                unusable.append((r, err))
    return unusable


def _video_folder(root: Path, video_dir: str) -> Path:
    """The folder the clips' videos are read from (``video_dir``; module docstring)."""
    if video_dir != "auto":
        return root / video_dir
    frames = root / FRAMES_DIR
    return frames if _is_dir(frames) else root / RAW_DIR


def _check_video(
    records: list[dict[str, Any]],
    folder: Path,
    csv_path: Path,
    problems: list[str],
    auto: bool,
) -> list[tuple[dict[str, Any], str]]:
    """Find each record's video (or frames) file under ``folder`` and check it opens
    (:func:`mmml_core.data.video.probe_video`); sets the records' video fields. Returns the
    records whose own video is unusable, like :func:`_check_audio`."""
    from mmml_core.data.video import FrameError, frames_info, probe_video

    missing = (
        f"the MMSA layout keeps the videos in {RAW_DIR}/<video_id>/<clip_id>.mp4; "
        f"`mmml-bench extract-frames` writes {FRAMES_DIR}/"
    )
    extensions = (*VIDEO_EXTENSIONS, FRAMES_EXTENSION)
    todo, unusable = _locate(records, folder, extensions, "video", missing, csv_path, problems)
    if auto and folder.name == FRAMES_DIR:
        hint = (
            f"; {folder} exists, so every clip is read from it: finish the extraction "
            f"(`mmml-bench extract-frames {folder.parent}`) or set data.video_dir={RAW_DIR}"
        )
        unusable = [(r, m + hint) for r, m in unusable]

    def check(r: dict[str, Any]) -> str | None:
        path = r["video_path"]
        if str(path).lower().endswith(FRAMES_EXTENSION):
            try:
                info = frames_info(path)
            except FrameError as exc:
                return str(exc)
            r["video_fps"], r["video_frames"] = info.fps, info.frames
            return None
        return probe_video(path)

    with ThreadPoolExecutor(max_workers=8) as pool:  # opening files is mostly I/O
        for r, err in zip(todo, pool.map(check, todo), strict=True):
            if err is not None:
                unusable.append((r, err))
    for r in records:  # fields a Row takes (set only when video is loaded)
        r.setdefault("video_path", None)
    return unusable


def _first_of_each_split(rows: list[Row], max_items: int | None) -> list[Row]:
    if max_items is None:
        return rows
    taken: dict[str, int] = {}
    kept = []
    for r in rows:
        if taken.get(r.mode, 0) < max_items:
            taken[r.mode] = taken.get(r.mode, 0) + 1
            kept.append(r)
    return kept


def _audio_report(rows: Sequence[Row], max_audio_seconds: float | None) -> dict[str, int]:
    cap = _cap(max_audio_seconds)
    counts = {
        f"clips resampled to {SAMPLE_RATE // 1000} kHz": sum(
            r.audio_rate != SAMPLE_RATE for r in rows
        ),
        "clips downmixed to mono": sum((r.audio_channels or 1) > 1 for r in rows),
    }
    if cap is not None:
        counts[f"clips cut to {max_audio_seconds:g} s"] = sum(
            (r.audio_samples or 0) > cap for r in rows
        )
    return {k: v for k, v in counts.items() if v}

"""Generator of the bundled ``demo`` dataset (docs/data.md); see ``data/demo/README.md``.

    python -m mmml_core.data.make_demo --out src/mmml_core/data/demo --seed 0

Dev-time only (needs the ``espeak-ng`` program and torchaudio; ``--keep-audio`` keeps the
committed audio and needs neither); the generated files are committed, so nothing regenerates
them at install or test time. A seed fixes the CSV, the decoded audio (the Ogg container's
random stream serial numbers aside) and the decoded video frames exactly.

Design: every utterance has a text label ``label_T`` and an independent audio label
``label_A``, each one of ``LEVELS`` with equal probability, and ``label`` is their mean.

- Text: a sentence "<prefix> <subject> <predicate>" written for this project; the predicate
  comes from a lexicon of positive, neutral and negative phrases (``PREDICATES``) and sets
  ``label_T``; prefixes and subjects are sentiment-free.
- Audio: espeak-ng speaks the sentence with a prosody set by ``label_A`` (``PROSODY``): pitch
  and speaking rate carry it, since data2vec/hubert normalise each waveform and cannot hear
  loudness; amplitude also changes, as a person's voice would (the openSMILE and Mel
  baselines do hear it). Small random jitter
  keeps the levels from being single points.

- Video: a drawn face (``render_face``) whose mouth carries ``label_V``: a smile, a flat line
  or a frown, with a little jitter of its curvature; skin tone, background colour, the face's
  position and size, a slow head drift and a blink are nuisance factors drawn from an RNG of
  their own (seeded from the seed and the clip's index, never from ``plan``'s), independent of
  every label. ``label_V = label_T`` by design (the speaker's feeling about the subject shows
  on the face as in the words), so on ordinary clips the face repeats the text, and on echo
  clips it gives the share of the label that, without context, neither text nor audio has.
  Written as ``Raw/<video>/<clip>.mp4`` (``VIDEO_SIZE`` square frames, ``VIDEO_FPS``, H.264
  when PyAV has libx264), as long as the clip's audio; rewritten on every run.

So neither text nor audio alone determines ``label``; ``label_report`` says how well the best
text-only, audio-only and video-only predictors can do, computed from the labels alone.

Context: about a fifth of all clips (never the first of a video) are *echo* clips
(``ECHO_SHARE``, never two in a row): their text is a short reply that refers back ("I felt the
same way about it.", one of the few ``ECHO_REPLIES``) and their ``label_T`` is the previous
clip's, so the text half of their label can only be known by reading the previous utterance
(``data.text_context``). Their audio is the speech planned for that slot, whose prosody
still carries their own ``label_A``; its words are the planned sentence (``Utterance.spoken``),
which the demo's small audio encoders do not recognise. Their face shows their own
``label_T`` (the previous clip's): the feeling the reply agrees with.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import itertools
import random
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmml_core.data.reader import COLUMNS
from mmml_core.metrics import regression_metrics, sims_classes

__all__ = [
    "LEVELS",
    "PREDICATES",
    "PROSODY",
    "VIDEO_FPS",
    "VIDEO_SIZE",
    "Utterance",
    "clip_frames",
    "generate",
    "label_report",
    "main",
    "render_face",
    "video_codec",
    "write_video",
]

#: The values label_T and label_A take; label = (label_T + label_A) / 2.
LEVELS: tuple[float, ...] = (-0.8, 0.0, 0.8)
#: Utterances per (label_T, label_A) pair and split: 9 pairs x 50 = 450, split 60/20/20.
PER_PAIR = {"train": 30, "valid": 10, "test": 10}
CLIPS_PER_VIDEO = 10
SAMPLE_RATE = 16_000
#: The chance that a clip after the first of its video (and after a non-echo clip) is an echo.
ECHO_SHARE = 0.3

PREFIXES = ("", "Honestly,", "Well,", "Overall,", "Really,", "So")
SUBJECTS = (
    "the movie",
    "this film",
    "the plot",
    "the acting",
    "the ending",
    "the music",
    "the story",
    "the cast",
    "the soundtrack",
    "this show",
    "the script",
    "the dialogue",
    "the scenery",
    "the hero",
    "the sequel",
    "the finale",
)
PREDICATES: dict[float, tuple[str, ...]] = {
    0.8: (
        "was wonderful",
        "is truly brilliant",
        "was a delight",
        "made me smile",
        "is really great",
        "was beautifully done",
        "felt fresh and clever",
        "is excellent",
        "was charming",
        "left me happy",
        "is superb",
        "was fantastic",
    ),
    0.0: (
        "was released in May",
        "is two hours long",
        "was filmed in Canada",
        "has three parts",
        "was shown on Tuesday",
        "is in English",
        "starts at eight",
        "was made last year",
        "follows a family",
        "is set in a city",
        "has a red poster",
        "was on television",
    ),
    -0.8: (
        "was awful",
        "is truly boring",
        "was a disaster",
        "made me cringe",
        "is really bad",
        "was poorly done",
        "felt dull and lazy",
        "is terrible",
        "was annoying",
        "left me angry",
        "is dreadful",
        "was a mess",
    ),
}


#: The texts of echo clips: short replies that refer to the previous utterance and carry no
#: sentiment of their own. Few and each used many times, so that an echo clip's label cannot be
#: learnt from its own words (the same reply follows positive, neutral and negative clips).
ECHO_REPLIES: tuple[str, ...] = (
    "I felt the same way about it.",
    "It left me with the same impression.",
    "That was no different for me.",
    "It gave me that same feeling.",
    "It struck me the same way.",
    "Just like that, for me too.",
)


@dataclass(frozen=True)
class Prosody:
    pitch: int  # espeak-ng -p, 0..99 (50 = the voice's normal pitch)
    rate: int  # espeak-ng -s, words per minute
    amplitude: int  # espeak-ng -a, 0..200


#: label_A -> prosody: low and slow, normal, high and fast (three clearly separated levels).
PROSODY: dict[float, Prosody] = {
    -0.8: Prosody(pitch=15, rate=160, amplitude=80),
    0.0: Prosody(pitch=50, rate=200, amplitude=110),
    0.8: Prosody(pitch=88, rate=255, amplitude=150),
}
PITCH_JITTER, RATE_JITTER = 5, 10  # uniform +- around each level
VOICES = ("en-us", "en-gb")  # a nuisance factor, independent of every label


@dataclass(frozen=True)
class Utterance:
    video_id: str
    clip_id: str
    text: str
    label_T: float
    label_A: float
    mode: str
    voice: str
    pitch: int
    rate: int
    amplitude: int
    spoken: str = ""  # the sentence the audio speaks ("" = the text)
    echo: bool = False  # the text refers back: label_T is the previous clip's

    @property
    def label(self) -> float:
        return round((self.label_T + self.label_A) / 2, 1)

    @property
    def speech(self) -> str:
        return self.spoken or self.text

    @property
    def label_V(self) -> float:
        """What the face shows: the speaker's feeling about the subject, i.e. ``label_T`` (on
        an echo clip the previous clip's, which the reply agrees with)."""
        return self.label_T


def plan(seed: int) -> list[Utterance]:
    """Which sentence, labels, split and prosody each clip gets (no audio yet)."""
    rng = random.Random(seed)
    sentences = {}
    for level, predicates in PREDICATES.items():
        combos = list(itertools.product(PREFIXES, SUBJECTS, predicates))
        rng.shuffle(combos)
        sentences[level] = iter(combos)  # drawn without replacement: every text is unique
    by_split: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for t, a in itertools.product(LEVELS, LEVELS):
        for mode, count in PER_PAIR.items():
            for _ in range(count):
                prefix, subject, predicate = next(sentences[t])
                text = f"{prefix} {subject} {predicate}".strip()
                by_split[mode].append((t, a, text[0].upper() + text[1:] + "."))
    out = []
    video = 0
    for mode in PER_PAIR:
        items = by_split[mode]
        rng.shuffle(items)
        for start in range(0, len(items), CLIPS_PER_VIDEO):
            video += 1
            for k, (t, a, text) in enumerate(items[start : start + CLIPS_PER_VIDEO], start=1):
                p = PROSODY[a]
                out.append(
                    Utterance(
                        video_id=f"demo{video:03d}",
                        clip_id=f"{k:04d}",
                        text=text,
                        label_T=t,
                        label_A=a,
                        mode=mode,
                        voice=rng.choice(VOICES),
                        pitch=p.pitch + rng.randint(-PITCH_JITTER, PITCH_JITTER),
                        rate=p.rate + rng.randint(-RATE_JITTER, RATE_JITTER),
                        amplitude=p.amplitude,
                    )
                )
    return _with_echoes(out, rng)


def _with_echoes(utterances: list[Utterance], rng: random.Random) -> list[Utterance]:
    """Turn a share of the clips into echo clips (module docstring), drawing from ``rng``
    after every other choice, so that the rest of the plan does not depend on it."""
    # a shuffled deck with len(PREFIXES) x len(SUBJECTS) copies of each reply: its size fixes
    # the random draws that follow, so the echo clips stay where the first echo release had them
    deck = [r for _ in itertools.product(PREFIXES, SUBJECTS) for r in ECHO_REPLIES]
    rng.shuffle(deck)
    replies = iter(deck)
    out: list[Utterance] = []
    for u in utterances:
        prev = out[-1] if out and out[-1].video_id == u.video_id else None
        if prev is not None and not prev.echo and rng.random() < ECHO_SHARE:
            reply = next(replies)
            u = dataclasses.replace(u, text=reply, spoken=u.text, label_T=prev.label_T, echo=True)
        out.append(u)
    return out


def synthesize(u: Utterance) -> np.ndarray:
    """espeak-ng speech for ``u``: float32 mono at 16 kHz, leading/trailing silence trimmed."""
    import soundfile as sf
    import torch
    import torchaudio.functional as taf

    cmd = [
        "espeak-ng",
        "-v",
        u.voice,
        "-p",
        str(u.pitch),
        "-s",
        str(u.rate),
        "-a",
        str(u.amplitude),
        "-z",
        "--stdout",
        u.speech,
    ]
    wav_bytes = subprocess.run(cmd, check=True, capture_output=True).stdout
    wave, sr = sf.read(io.BytesIO(wav_bytes), dtype="float32")
    wave = taf.resample(torch.from_numpy(wave), sr, SAMPLE_RATE).numpy()
    loud = np.flatnonzero(np.abs(wave) > 0.02 * np.abs(wave).max())
    pad = SAMPLE_RATE // 20  # keep 50 ms of silence either side
    return wave[max(0, loud[0] - pad) : loud[-1] + pad + 1]


#: The video: square frames of VIDEO_SIZE pixels (the video encoders centre-crop to a square
#: and resize to 64), VIDEO_FPS frames per second, H.264 at this constant rate factor.
VIDEO_SIZE = 96
VIDEO_FPS = 8
VIDEO_CRF = 32
#: Skin tones (RGB), a nuisance factor: all lighter than the dark eyes and mouth.
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (255, 224, 189),
    (241, 194, 125),
    (224, 172, 105),
    (198, 134, 66),
    (160, 100, 60),
    (125, 80, 50),
)
FEATURE_RGB = (25, 10, 15)  # eyes and mouth
#: The mouth's curvature is label_V / 0.8 (+1 smile, 0 flat, -1 frown) plus uniform jitter.
CURVE_JITTER = 0.15
MOUTH_SAG = 0.28  # how far the centre of a full smile lies below its corners, x head height


def video_codec() -> str:
    """``libx264`` where this PyAV's FFmpeg has it (tiny files), else ``mpeg4``."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _rng_video(seed: int, index: int) -> np.random.Generator:
    # an RNG of its own per clip (index: the clip's place in plan(seed)), so that the videos
    # draw nothing from plan's RNG and a clip can be rendered alone
    return np.random.default_rng([0x51DE0, seed, index])


def render_face(label_V: float, rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """``(n_frames, VIDEO_SIZE, VIDEO_SIZE, 3)`` uint8 RGB frames of a drawn face whose mouth
    shows ``label_V`` (module docstring); every other factor is drawn from ``rng``, the same
    draws whatever the label."""
    size = VIDEO_SIZE
    bg = rng.integers(40, 230, 3).astype(np.float64)
    skin = np.array(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], dtype=np.float64)
    rx = rng.uniform(25, 30)  # head half-width and half-height, pixels
    ry = rx * rng.uniform(1.15, 1.3)
    cx, cy = size / 2 + rng.uniform(-5, 5), size / 2 + rng.uniform(-4, 4)
    drift = rng.uniform(-3, 3, 2)  # where the head moves over the clip, pixels
    curve = label_V / max(LEVELS) + rng.uniform(-CURVE_JITTER, CURVE_JITTER)
    half_width = rx * rng.uniform(0.45, 0.55)  # of the mouth
    u_blink = rng.random()
    blink = 1 + int(u_blink * (n_frames - 1)) if n_frames > 1 else -1  # one frame, eyes shut
    dark = np.array(FEATURE_RGB, dtype=np.float64)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5

    def paint(img: np.ndarray, dist: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        # dist: signed distance to the shape's edge in pixels (< 0 inside), antialiased edge
        alpha = np.clip(0.5 - dist, 0.0, 1.0)[..., None]
        return img * (1 - alpha) + rgb * alpha

    def ellipse(x0: float, y0: float, ax: float, ay: float) -> np.ndarray:
        return (np.sqrt(((xx - x0) / ax) ** 2 + ((yy - y0) / ay) ** 2) - 1) * min(ax, ay)

    frames = np.empty((n_frames, size, size, 3), dtype=np.uint8)
    for f in range(n_frames):
        s = f / max(n_frames - 1, 1)
        x0, y0 = cx + drift[0] * s, cy + drift[1] * s
        img = np.broadcast_to(bg, (size, size, 3)).copy()
        img = paint(img, ellipse(x0, y0, rx, ry), skin)
        eye_h = 0.15 if f == blink else 1.0
        for side in (-1, 1):
            e = 0.13 * rx
            img = paint(
                img, ellipse(x0 + side * 0.38 * rx, y0 - 0.25 * ry, e, e * eye_h + 0.6), dark
            )
        # the mouth: a thick parabola y = my + sag (1/2 - u^2), u in [-1, 1] across its width
        sag = MOUTH_SAG * ry * curve
        u = np.clip((xx - x0) / half_width, -1, 1)
        curve_y = y0 + 0.45 * ry + sag * (0.5 - u**2)
        slope = -2 * sag * u / half_width
        across = np.abs(yy - curve_y) / np.sqrt(1 + slope**2)
        beyond = np.maximum(np.abs(xx - x0) - half_width, 0)  # round ends
        img = paint(img, np.sqrt(across**2 + beyond**2) - 2.2, dark)
        frames[f] = np.round(img).astype(np.uint8)
    return frames


def write_video(frames: np.ndarray, path: Path, codec: str | None = None) -> None:
    """Encode RGB ``frames`` at ``VIDEO_FPS`` into an MP4 at ``path`` (yuv420p; ``libx264``
    at ``VIDEO_CRF`` or ``mpeg4``, one thread, so the same frames give the same file); frame
    ``k`` is shown at ``k / VIDEO_FPS`` seconds."""
    import av

    codec = codec or video_codec()
    options = {"threads": "1"}
    if codec == "libx264":
        options |= {"crf": str(VIDEO_CRF), "preset": "veryslow"}
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=VIDEO_FPS, options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if codec != "libx264":
            stream.bit_rate = 40_000
        for k, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = k
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def n_video_frames(duration: float) -> int:
    """Frames of a clip whose audio lasts ``duration`` seconds: the nearest whole number of
    ``1 / VIDEO_FPS`` steps, at least one."""
    return max(1, round(duration * VIDEO_FPS))


def clip_frames(u: Utterance, index: int, seed: int, duration: float) -> np.ndarray:
    """The frames of the video of ``u``, the ``index``-th clip of ``plan(seed)``, whose audio
    lasts ``duration`` seconds."""
    return render_face(u.label_V, _rng_video(seed, index), n_video_frames(duration))


def write_videos(
    out: Path, utterances: Sequence[Utterance], durations: Sequence[float], seed: int
) -> str:
    """(Re)write ``Raw/<video>/<clip>.mp4`` under ``out`` for every utterance, each as long
    as its audio; returns the codec used."""
    codec = video_codec()
    shutil.rmtree(out / "Raw", ignore_errors=True)
    for index, (u, duration) in enumerate(zip(utterances, durations, strict=True)):
        frames = clip_frames(u, index, seed, duration)
        path = out / "Raw" / u.video_id / f"{u.clip_id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(frames, path, codec)
    return codec


def generate(out: Path, seed: int = 0, keep_audio: bool = False) -> list[Utterance]:
    """Write ``label.csv``, ``wav/<video>/<clip>.ogg`` (Opus), ``Raw/<video>/<clip>.mp4`` and
    ``README.md`` under ``out``.

    ``keep_audio``: keep the audio files already in ``out`` (made by this generator for the
    same seed: the speech of each slot depends only on the seed) and rewrite only the CSV, the
    videos (as long as those audio files) and the README; needs no espeak-ng."""
    import soundfile as sf

    utterances = plan(seed)
    durations = []
    if keep_audio:
        old = (out / "README.md").read_text(encoding="utf-8")
        espeak = old.split("these files were made with ")[1].split(")")[0]
        for u in utterances:
            info = sf.info(str(out / "wav" / u.video_id / f"{u.clip_id}.ogg"))
            durations.append(info.frames / info.samplerate)
    else:
        espeak = _espeak_version()
        shutil.rmtree(out / "wav", ignore_errors=True)
        for u in utterances:
            wave = synthesize(u)
            durations.append(len(wave) / SAMPLE_RATE)
            path = out / "wav" / u.video_id / f"{u.clip_id}.ogg"
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opus at ~23 kbit/s: pitch and rate survive, the whole set stays a few MB
            sf.write(path, wave, SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=0.93)
    codec = write_videos(out, utterances, durations, seed)
    with open(out / "label.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for u in utterances:
            w.writerow(
                [
                    u.video_id,
                    u.clip_id,
                    u.text,
                    f"{u.label:.1f}",
                    f"{u.label_T:.1f}",
                    f"{u.label_A:.1f}",
                    f"{u.label_V:.1f}",
                    _annotation(u.label),
                    u.mode,
                ]
            )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    video_size = sum(p.stat().st_size for p in (out / "Raw").rglob("*") if p.is_file())
    stats = {
        "codec": codec,
        "video_size": video_size,
        "frames": [n_video_frames(d) for d in durations],
        "seed": seed,
        "n": len(utterances),
        "dur": durations,
        "size": size,
        "espeak": espeak,
        "echoes": {m: sum(u.echo for u in utterances if u.mode == m) for m in PER_PAIR},
    }
    rows = [(u.label_T, u.label_A, u.label, u.mode) for u in utterances]
    echo = [u.echo for u in utterances]
    report = label_report(rows, echo, [u.label_V for u in utterances])
    (out / "README.md").write_text(_readme(stats, report), encoding="utf-8")
    return utterances


def _annotation(label: float) -> str:
    return "Positive" if label > 0 else "Negative" if label < 0 else "Neutral"


def _espeak_version() -> str:
    text = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: ..." -> "espeak-ng 1.51"
    return "espeak-ng " + text.split("text-to-speech:")[1].split()[0]


def label_report(
    rows: Sequence[tuple[float, float, float, str]],
    echo: Sequence[bool] | None = None,
    label_V: Sequence[float] | None = None,
) -> str:
    """Markdown table: the best text-only / audio-only / joint predictors of ``label``.

    ``rows`` are ``(label_T, label_A, label, mode)``. Each predictor sees only its labels:
    the Acc columns use the Bayes-optimal classifier (the most frequent class of ``label``
    among train rows with the same inputs, ties to the lower class), MAE and Corr the
    conditional mean of ``label`` over train rows with the same inputs; all are scored on
    the test split with ``mmml_core.metrics``. With ``echo`` (one flag per row), two more
    predictors see the labels as a model without context does: on an echo clip ``label_T``
    is unknown (only that the clip is an echo). With ``label_V`` (one per row), predictors
    that see the vision label follow (after all the others, which do not change). A test
    row whose inputs no train row has (possible only where the inputs are redundant: on an
    ordinary clip the text's label_T is label_V) is predicted from the train rows that share
    its inputs but the first.
    """
    n = len(rows)
    for name, extra in (("echo", echo), ("label_V", label_V)):
        if extra is not None and len(extra) != n:
            raise ValueError(f"label_report: {len(extra)} {name} values for {n} rows")
    table = []
    for i, (t, a, y, mode) in enumerate(rows):
        r = {"T": t, "A": a, "y": y, "mode": mode}
        if echo is not None:  # label_T where the text says it, "echo" where it refers back
            r["T0"] = "echo" if echo[i] else t
        if label_V is not None:
            r["V"] = label_V[i]
        table.append(r)
    train = [r for r in table if r["mode"] == "train"]
    test = [r for r in table if r["mode"] == "test"]
    views: dict[str, tuple[str, ...]] = {
        "text only (label_T)": ("T",),
        "audio only (label_A)": ("A",),
        "both": ("T", "A"),
    }
    if echo is not None:
        views["text only, without context"] = ("T0",)
        views["both, without context"] = ("T0", "A")
    if label_V is not None:
        views["video only (label_V)"] = ("V",)
        views["audio + video (label_A, label_V)"] = ("A", "V")
        if echo is not None:
            views["text + audio + video, without context"] = ("T0", "A", "V")
    lines = [
        "| predictor | Acc2 | Acc3 | Acc5 | MAE | Corr |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    y_test = np.array([r["y"] for r in test], dtype=np.float32)
    for name, cols in views.items():
        key = lambda r, cols=cols: tuple(r[c] for c in cols)  # noqa: E731
        groups: dict[tuple, list[float]] = defaultdict(list)
        for r in train:
            groups[key(r)].append(r["y"])
        for r in test:
            if key(r) not in groups:  # back off: the train rows agreeing on the other inputs
                groups[key(r)] = [x["y"] for x in train if key(x)[1:] == key(r)[1:]]
        accs = []
        for n_cls in (2, 3, 5):
            best = {}
            for k, labels in groups.items():
                counts = Counter(sims_classes(np.array(labels, dtype=np.float32), n_cls).tolist())
                best[k] = max(sorted(counts), key=lambda c, counts=counts: counts[c])
            pred_cls = np.array([best[key(r)] for r in test])
            accs.append(float(np.mean(pred_cls == sims_classes(y_test, n_cls))))
        mean_pred = np.array([np.mean(groups[key(r)]) for r in test], dtype=np.float32)
        m = regression_metrics(mean_pred, y_test, "sims")
        lines.append(
            f"| {name} | "
            + " | ".join(f"{100 * a:.1f}" for a in accs)
            + f" | {m['MAE']:.3f} | {m['Corr']:.3f} |"
        )
    return "\n".join(lines)


def _readme(stats: dict, report: str) -> str:
    dur = np.array(stats["dur"])
    lexicon = "\n".join(
        f"- `label_T = {level:+.1f}`: " + "; ".join(f'"{p}"' for p in phrases)
        for level, phrases in PREDICATES.items()
    )
    prosody = "\n".join(
        f"| {level:+.1f} | {p.pitch} ± {PITCH_JITTER} | {p.rate} ± {RATE_JITTER} | {p.amplitude} |"
        for level, p in PROSODY.items()
    )
    frames = np.array(stats["frames"])
    return _README.format(
        codec={
            "libx264": f"H.264 (libx264, CRF {VIDEO_CRF})",
            "mpeg4": "MPEG-4 Part 2 (FFmpeg's mpeg4)",
        }[stats["codec"]],
        video_size=VIDEO_SIZE,
        video_fps=VIDEO_FPS,
        video_mb=stats["video_size"] / 1e6,
        fmin=frames.min(),
        fmean=frames.mean(),
        fmax=frames.max(),
        n_tones=len(SKIN_TONES),
        curve_jitter=CURVE_JITTER,
        n=stats["n"],
        seed=stats["seed"],
        size_mb=stats["size"] / 1e6,
        espeak=stats["espeak"],
        dmin=dur.min(),
        dmean=dur.mean(),
        dmax=dur.max(),
        lexicon=lexicon,
        prosody=prosody,
        prefixes=", ".join(f'"{p}"' for p in PREFIXES if p),
        subjects=", ".join(SUBJECTS),
        voices=", ".join(VOICES),
        report=report,
        splits=", ".join(f"{m} {9 * c}" for m, c in PER_PAIR.items()),
        echoes=", ".join(f"{m} {n}" for m, n in stats["echoes"].items()),
        echo_total=sum(stats["echoes"].values()),
        echo_share=ECHO_SHARE,
        echo_replies="; ".join(f'"{p}"' for p in ECHO_REPLIES),
    )


_README = """\
# The `demo` dataset

A small multimodal sentiment set shipped inside `mmml-core`, so that `mmml-bench` runs with
no download. Same layout and CSV schema as CH-SIMS (per-modality labels, `label` in
[-1, 1]); English text, speech synthesized with espeak-ng. This file is written by the
generator: `python -m mmml_core.data.make_demo --out src/mmml_core/data/demo --seed {seed}`
(needs `espeak-ng` and torchaudio; these files were made with {espeak}; with
`--keep-audio` it keeps the audio files and rewrites the rest, with neither).

- {n} utterances, split {splits} (`mode`), 10 clips per `video_id`, each video
  in one split.
- Audio: `wav/<video_id>/<clip_id>.ogg`, Ogg Opus, 16 kHz mono, {dmin:.2f}–{dmax:.2f} s
  (mean {dmean:.2f} s). Whole folder: {size_mb:.2f} MB.
- Video: `Raw/<video_id>/<clip_id>.mp4` (the MMSA layout's video path), a drawn face,
  {video_size}x{video_size} pixels, {video_fps} fps, {codec}, yuv420p, as long as the clip's
  audio ({fmin}–{fmax} frames, mean {fmean:.1f}); {video_mb:.2f} MB in all
  ([below](#video)).
- `label_V` is what the face shows, equal to `label_T` by design ([below](#video));
  `annotation` is Positive/Neutral/Negative from `label`.
- Reproducible: the same seed gives the same `label.csv`, the same decoded audio
  samples and the same decoded video frames (with the same encoder build); the `.ogg` bytes
  differ between runs only in the Ogg stream serial numbers, which libsndfile picks at random.
- Text and labels were written for this project and are distributed under the project's
  license; no third-party corpus is used.

## Label design

`label_T` and `label_A` are drawn independently, each uniformly from {{-0.8, 0, +0.8}}
(exactly 50 utterances per pair: 30 train, 10 valid, 10 test), and
`label = (label_T + label_A) / 2`, one of -0.8, -0.4, 0, 0.4, 0.8. Neither modality alone
determines `label`: the text says which third of the range it is in, the voice the rest.

**Text carries `label_T`.** Each sentence is `<prefix> <subject> <predicate>.` Prefixes
({prefixes}, or none) and subjects ({subjects}) carry no sentiment. The predicate sets
`label_T`:

{lexicon}

Every ordinary sentence occurs once; the same phrases recur across splits with other subjects and
prefixes, so a small text encoder trained from scratch can learn the lexicon.

**Context: echo clips.** {echo_total} clips ({echoes}) are *echo* clips: after an ordinary
clip of the same video, with probability {echo_share}, a clip's text refers back to the one
before instead of carrying its own sentiment: it is one of a few short replies, {echo_replies},
each used for many clips (so its words cannot tell its label),
and its `label_T` is the previous clip's `label_T` (so its `label` too depends on the previous
utterance). An echo clip never follows another one, and the first clip of a video is never
one. Its audio is the speech planned for that slot: the prosody carries its own `label_A`, as
for every clip, and the words spoken are the planned sentence, not the echo text. A model that
reads the previous utterance (`data.text_context=1`) can know the text half of an echo clip's
label; one without context cannot ("without context" rows below).

**Audio carries `label_A` in its prosody.** espeak-ng speaks the sentence with:

| label_A | pitch (`-p`) | rate (`-s`, words/min) | amplitude (`-a`) |
| --- | --- | --- | --- |
{prosody}

The voice ({voices}) is chosen at random, independent of every label. Pitch and rate are the
main carriers: the pretrained-style encoders (`data2vec`, `hubert`) normalise each waveform
to zero mean and unit variance, so loudness is invisible to them. The feature baselines
(`opensmile`, `mel`) do see loudness, and in this set it also follows `label_A`: for them the
audio label is carried by pitch, rate and loudness together.

## Video

**The face carries `label_V = label_T` in its mouth.** Each clip is a drawing of a face (a head
ellipse, two eyes, a mouth) whose mouth is a thick dark curve: a smile for `label_V = +0.8`, a
flat line for 0, a frown for -0.8, its curvature jittered by ±{curve_jitter} of a full
smile so that the levels are not single points; the three stay clearly distinct at 64x64
pixels after the video encoders' centre crop and resize. Independent of every label, drawn
from an RNG of their own (seeded from the seed and the clip's index, so `plan`'s draws are
untouched): the skin tone (one of {n_tones}), the background colour, the face's position
(up to 5 pixels) and size (about ±10%), the mouth's width, a slow drift of the head over the clip (up to
3 pixels) and a blink (one frame with the eyes shut). Frame `k` is shown at `k/{video_fps}` s,
the first at 0. The videos need neither espeak-ng nor torchaudio, only PyAV; the generator
rewrites them on every run, `--keep-audio` too.

`label_V` is the speaker's feeling about the subject, the same as the text's, by design: on an
ordinary clip the face repeats what the words say, and on an echo clip it shows the previous
clip's `label_T` (the feeling the reply agrees with), the share of the label that, without
context, neither its text nor its audio carries. So text, audio and video together determine
`label` without context; audio and video together do too.

## How well can one modality do?

Computed from the labels alone (generator's `label_report`): each predictor sees only the
labels named; Acc columns use the Bayes-optimal classifier (the most frequent class among
train rows with the same inputs), MAE and Corr the conditional mean; scored on the test
split with the CH-SIMS metrics of `mmml_core.metrics` (Acc ×100).

{report}

In expectation a single modality reaches Acc2 7/9 = 77.8, Acc3 5/9 = 55.6, Acc5 1/3 = 33.3
and both together 100 when it can read the previous utterance; without context the echo
clips' text half is unknown, which the "without context" rows measure. The face shows
`label_T`, so video alone does as well as text with context, and adding it to text and audio
needs no context. Caveat: the speech also contains the words, so an audio model that
recognised speech could recover `label_T` too; the small audio encoders of the demo,
trained from scratch, are not expected to.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the bundled demo dataset.")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument(
        "--keep-audio",
        action="store_true",
        help="keep the audio files in --out (made for the same seed) and rewrite only "
        "label.csv, the videos and README.md (no espeak-ng needed)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    utterances = generate(args.out, args.seed, keep_audio=args.keep_audio)
    print(f"wrote {len(utterances)} utterances to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

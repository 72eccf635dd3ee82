"""Generator of the bundled ``demo`` dataset (docs/data.md); see ``data/demo/README.md``.

    python -m mmml_core.data.make_demo --out src/mmml_core/data/demo --seed 0

Dev-time only (needs the ``espeak-ng`` program and torchaudio); the generated files are
committed, so nothing regenerates them at install or test time. A seed fixes the CSV and
the decoded audio exactly (the Ogg container's random stream serial numbers aside).

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

So neither modality alone determines ``label``; ``label_report`` says how well the best
text-only and audio-only predictors can do, computed from the labels alone.

Context: about a fifth of all clips (never the first of a video) are *echo* clips
(``ECHO_SHARE``, never two in a row): their text is a short reply that refers back ("I felt the
same way about it.", one of the few ``ECHO_REPLIES``) and their ``label_T`` is the previous
clip's, so the text half of their label can only be known by reading the previous utterance
(``data.text_context``). Their audio is the speech planned for that slot, whose prosody
still carries their own ``label_A``; its words are the planned sentence (``Utterance.spoken``),
which the demo's small audio encoders do not recognise.
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

__all__ = ["LEVELS", "PREDICATES", "PROSODY", "Utterance", "generate", "label_report", "main"]

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


def generate(out: Path, seed: int = 0, keep_audio: bool = False) -> list[Utterance]:
    """Write ``label.csv``, ``wav/<video>/<clip>.ogg`` (Opus) and ``README.md`` under ``out``.

    ``keep_audio``: keep the audio files already in ``out`` (made by this generator for the
    same seed: the speech of each slot depends only on the seed) and rewrite only the CSV and
    the README; needs no espeak-ng."""
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
                    "",
                    _annotation(u.label),
                    u.mode,
                ]
            )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    stats = {
        "seed": seed,
        "n": len(utterances),
        "dur": durations,
        "size": size,
        "espeak": espeak,
        "echoes": {m: sum(u.echo for u in utterances if u.mode == m) for m in PER_PAIR},
    }
    rows = [(u.label_T, u.label_A, u.label, u.mode) for u in utterances]
    echo = [u.echo for u in utterances]
    report = label_report(rows, echo)
    (out / "README.md").write_text(_readme(stats, report), encoding="utf-8")
    return utterances


def _annotation(label: float) -> str:
    return "Positive" if label > 0 else "Negative" if label < 0 else "Neutral"


def _espeak_version() -> str:
    text = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    # "eSpeak NG text-to-speech: 1.51  Data at: ..." -> "espeak-ng 1.51"
    return "espeak-ng " + text.split("text-to-speech:")[1].split()[0]


def label_report(
    rows: Sequence[tuple[float, float, float, str]], echo: Sequence[bool] | None = None
) -> str:
    """Markdown table: the best text-only / audio-only / joint predictors of ``label``.

    ``rows`` are ``(label_T, label_A, label, mode)``. Each predictor sees only its labels:
    the Acc columns use the Bayes-optimal classifier (the most frequent class of ``label``
    among train rows with the same inputs, ties to the lower class), MAE and Corr the
    conditional mean of ``label`` over train rows with the same inputs; all are scored on
    the test split with ``mmml_core.metrics``. With ``echo`` (one flag per row), two more
    predictors see the labels as a model without context does: on an echo clip ``label_T``
    is unknown (only that the clip is an echo).
    """
    if echo is not None:
        rows = [(*r, e) for r, e in zip(rows, echo, strict=True)]
    train = [r for r in rows if r[3] == "train"]
    test = [r for r in rows if r[3] == "test"]
    views: dict[str, tuple[int, ...]] = {
        "text only (label_T)": (0,),
        "audio only (label_A)": (1,),
        "both": (0, 1),
    }
    if echo is not None:
        views["text only, without context"] = (5,)
        views["both, without context"] = (5, 1)
        # column 5: label_T where the text says it, "echo" where it refers back
        rows = [(*r, "echo" if r[4] else r[0]) for r in rows]
        train = [r for r in rows if r[3] == "train"]
        test = [r for r in rows if r[3] == "test"]
    lines = [
        "| predictor | Acc2 | Acc3 | Acc5 | MAE | Corr |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    y_test = np.array([r[2] for r in test], dtype=np.float32)
    for name, cols in views.items():
        key = lambda r, cols=cols: tuple(r[c] for c in cols)  # noqa: E731
        groups: dict[tuple, list[float]] = defaultdict(list)
        for r in train:
            groups[key(r)].append(r[2])
        accs = []
        for n in (2, 3, 5):
            best = {}
            for k, labels in groups.items():
                counts = Counter(sims_classes(np.array(labels, dtype=np.float32), n).tolist())
                best[k] = max(sorted(counts), key=lambda c, counts=counts: counts[c])
            pred_cls = np.array([best[key(r)] for r in test])
            accs.append(float(np.mean(pred_cls == sims_classes(y_test, n))))
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
    return _README.format(
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
(needs `espeak-ng` and torchaudio; these files were made with {espeak}).

- {n} utterances, split {splits} (`mode`), 10 clips per `video_id`, each video
  in one split.
- Audio: `wav/<video_id>/<clip_id>.ogg`, Ogg Opus, 16 kHz mono, {dmin:.2f}–{dmax:.2f} s
  (mean {dmean:.2f} s). Whole folder: {size_mb:.2f} MB.
- `label_V` is empty (no vision); `annotation` is Positive/Neutral/Negative from `label`.
- Reproducible: the same seed gives the same `label.csv` and the same decoded audio
  samples; the `.ogg` bytes differ between runs only in the Ogg stream serial numbers,
  which libsndfile picks at random.
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

## How well can one modality do?

Computed from the labels alone (generator's `label_report`): each predictor sees only the
labels named; Acc columns use the Bayes-optimal classifier (the most frequent class among
train rows with the same inputs), MAE and Corr the conditional mean; scored on the test
split with the CH-SIMS metrics of `mmml_core.metrics` (Acc ×100).

{report}

In expectation a single modality reaches Acc2 7/9 = 77.8, Acc3 5/9 = 55.6, Acc5 1/3 = 33.3
and both together 100 when it can read the previous utterance; without context the echo
clips' text half is unknown, which the "without context" rows measure. Caveat: the speech also contains the words, so an audio model that
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
        "label.csv and README.md (no espeak-ng needed)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    utterances = generate(args.out, args.seed, keep_audio=args.keep_audio)
    print(f"wrote {len(utterances)} utterances to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

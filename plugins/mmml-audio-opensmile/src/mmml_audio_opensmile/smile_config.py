"""openSMILE feature-set configs with the paper's frame size and step (appendix A.2).

openSMILE fixes frame size and frame step inside its shipped config files: every ``cFramer``
section has ``frameSize = 0.060`` or ``0.020`` seconds and ``frameStep = 0.010`` seconds. The
paper uses 0.06 s frames every 0.02 s. To get that we rewrite those two keys.

We do not redistribute audEERING's config files. At run time the config tree shipped in the
installed ``opensmile`` wheel is copied into a directory of ours and the ``frameSize`` /
``frameStep`` of every ``cFramer`` section reachable from the chosen feature set (its ``.conf``
file and everything it includes) is replaced by the values of the encoder's config. The result
is a normal openSMILE config, passed as ``opensmile.Smile(feature_set=<path>)``.

Both framers of a feature set get the same size. openSMILE's feature sets read two frame
streams: 60 ms Gaussian-windowed frames (pitch, jitter/shimmer, harmonics) and 20 ms Hamming
frames (energy, spectral, MFCC); the LLD rows are the two streams side by side, so both must
move with the same step. The paper names one frame size; we apply it to both streams.

Every other time constant of these configs is counted in frames (smoothing over 3 frames,
delta regression over +-2 frames), so those windows scale with the step.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "DELTAS_LEVEL",
    "FEATURE_DIMS",
    "FEATURE_SETS",
    "PatchError",
    "feature_dim",
    "output_level",
    "patch_framers",
    "patched_config",
    "shipped_config_root",
    "write_patched_config",
]

#: feature-set name -> its ``.conf`` file, relative to the wheel's config root
FEATURE_SETS: dict[str, str] = {
    "ComParE_2016": "compare/ComParE_2016.conf",
    "eGeMAPSv02": "egemaps/v02/eGeMAPSv02.conf",
}

#: (feature set, openSMILE output level) -> number of low-level descriptors per frame.
#: ``lld_de`` is the level holding the deltas of the LLDs (ComParE only; eGeMAPS has none).
FEATURE_DIMS: dict[tuple[str, str], int] = {
    ("ComParE_2016", "lld"): 65,
    ("ComParE_2016", "lld_de"): 65,
    ("eGeMAPSv02", "lld"): 25,
}

#: openSMILE's level of the LLD deltas (``opensmile.FeatureLevel.LowLevelDescriptors_Deltas``)
DELTAS_LEVEL = "lld_de"


def output_level(feature_level: str, deltas: bool = False) -> str:
    """The openSMILE level to read: ``feature_level``, or with ``deltas`` that level followed by
    :data:`DELTAS_LEVEL` (``"lld;lld_de"``).

    An openSMILE reader given ``;``-separated levels joins them column-wise, frame by frame (the
    feature-set configs build ``lld`` and ``lld_de`` themselves that way with ``cVectorConcat``),
    so one run yields the LLDs and their deltas side by side, row i of both being frame i: the
    same numbers as two runs with ``feature_level="lld"`` and ``"lld_de"``, at the cost of one.
    """
    return f"{feature_level};{DELTAS_LEVEL}" if deltas else feature_level


def feature_dim(feature_set: str, feature_level: str, deltas: bool = False) -> int:
    """Columns per frame of :func:`output_level` (``KeyError`` for an unavailable level)."""
    width = FEATURE_DIMS[(feature_set, feature_level)]
    return width + FEATURE_DIMS[(feature_set, DELTAS_LEVEL)] if deltas else width


_SECTION = re.compile(r"^\s*\[([^\]:]+):(\w+)\]")
_FRAME_KEY = re.compile(r"^(\s*)(frameSize|frameStep)(\s*=\s*)(\S+)(.*)$")
# ``\{file}`` includes; ``\{\cm[...]}`` are command-line includes that openSMILE fills in
_INCLUDE = re.compile(r"\\\{(?!\\cm)([^}]+)\}")


class PatchError(RuntimeError):
    """The shipped config no longer has the structure the patch expects."""


def shipped_config_root() -> Path:
    """The ``config`` folder inside the installed ``opensmile`` wheel."""
    import opensmile

    root = Path(opensmile.__file__).parent / "core" / "config"
    if not root.is_dir():
        raise PatchError(f"opensmile {opensmile.__version__} has no config folder at {root}")
    return root


def _format_seconds(value: float) -> str:
    return repr(float(value))


def patch_framers(text: str, frame_seconds: float, step_seconds: float) -> tuple[str, int]:
    """``text`` with frameSize/frameStep of every ``cFramer`` section replaced.

    Returns the new text and the number of framer sections patched. A framer section that lacks
    either key raises :class:`PatchError` (openSMILE would then use its built-in default, not
    ours, so the output would silently have another frame rate).
    """
    out: list[str] = []
    current: str | None = None
    found: dict[str, set[str]] = {}

    def close_section() -> None:
        if current is not None and found[current] != {"frameSize", "frameStep"}:
            missing = {"frameSize", "frameStep"} - found[current]
            raise PatchError(f"cFramer section {current!r} sets no {', '.join(sorted(missing))}")

    for line in text.splitlines(keepends=True):
        section = _SECTION.match(line)
        if section:
            close_section()
            current = section.group(1) if section.group(2) == "cFramer" else None
            if current is not None:
                found[current] = set()
            out.append(line)
            continue
        key = _FRAME_KEY.match(line) if current is not None else None
        if key:
            indent, name, eq, _old, rest = key.groups()
            value = frame_seconds if name == "frameSize" else step_seconds
            newline = "\n" if line.endswith("\n") else ""
            out.append(f"{indent}{name}{eq}{_format_seconds(value)}{rest}{newline}")
            found[current].add(name)
            continue
        out.append(line)
    close_section()
    return "".join(out), len(found)


def _reachable(conf: Path) -> list[Path]:
    """``conf`` and every file it includes, recursively (includes are relative to the file)."""
    seen: list[Path] = []
    todo = [conf.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.append(path)
        for match in _INCLUDE.finditer(path.read_text()):
            child = (path.parent / match.group(1).strip()).resolve()
            if not child.is_file():
                raise PatchError(f"{path} includes {match.group(1)!r}, which does not exist")
            todo.append(child)
    return seen


def write_patched_config(
    feature_set: str, frame_seconds: float, step_seconds: float, directory: str | os.PathLike
) -> Path:
    """Copy the shipped config tree into ``directory`` and patch ``feature_set``'s framers.

    Returns the path of the patched ``.conf`` file to pass as ``Smile(feature_set=...)``.
    ``directory`` must not exist yet (it is created); use it to inspect or export a config.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose from {sorted(FEATURE_SETS)}")
    if not (frame_seconds > 0 and step_seconds > 0):
        raise ValueError("frame_seconds and step_seconds must be positive")
    target = Path(directory)
    shutil.copytree(shipped_config_root(), target)
    conf = target / FEATURE_SETS[feature_set]
    patched = 0
    for path in _reachable(conf):
        text, n = patch_framers(path.read_text(), frame_seconds, step_seconds)
        if n:
            path.write_text(text)
            patched += n
    if patched == 0:
        raise PatchError(f"{FEATURE_SETS[feature_set]} and its includes contain no cFramer section")
    return conf


_private_root: Path | None = None
_private_owner: int | None = None


def _cleanup_private_root() -> None:
    if _private_root is not None and _private_owner == os.getpid():
        shutil.rmtree(_private_root, ignore_errors=True)


def patched_config(feature_set: str, frame_seconds: float, step_seconds: float) -> Path:
    """Path of a patched config for these settings, written once per process.

    The copies live in a private temporary directory removed when the process that made it
    exits (DataLoader workers forked later reuse it and never delete it).
    """
    global _private_root, _private_owner
    if _private_root is None:
        import atexit

        _private_root = Path(tempfile.mkdtemp(prefix="mmml-opensmile-config-"))
        _private_owner = os.getpid()
        atexit.register(_cleanup_private_root)
    tag = hashlib.sha256(f"{feature_set}|{frame_seconds!r}|{step_seconds!r}".encode()).hexdigest()
    directory = _private_root / tag[:16]
    conf = directory / FEATURE_SETS.get(feature_set, "?")
    if not conf.is_file():
        # build next to the final place, then rename: a concurrent reader never sees half a tree
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=_private_root)) / "tree"
        write_patched_config(feature_set, frame_seconds, step_seconds, staging)
        try:
            os.replace(staging, directory)
        except OSError:  # another thread/process finished first; theirs is identical
            shutil.rmtree(staging.parent, ignore_errors=True)
        else:
            shutil.rmtree(staging.parent, ignore_errors=True)
    return conf

"""The project documents itself: every link in its Markdown files and every ``docs/<page>.md``
reference in any text file resolves inside the repository, and nothing points to documents
that are not part of it.

Files are those git lists (tracked, plus untracked files that are not ignored, so a new page
is checked before it is committed); outside a git checkout the tree is walked, skipping
``.git``, ``.venv`` and caches. No network: http(s) and mailto links are skipped. Anchors are
checked against the target file's headings, slugged as GitHub does.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The pages of docs/ (each must exist and be listed in docs/README.md).
DOC_PAGES = (
    "README.md",
    "architecture.md",
    "data.md",
    "encoders.md",
    "fusion.md",
    "metrics.md",
    "paper.md",
    "training.md",
)

#: References to documents kept outside the repository, which a user who clones it cannot
#: follow. Built from pieces so that this file does not contain them itself.
FORBIDDEN = (
    "shared" + "/reference",
    ".." + "/shared",
    "DES" + "IGN §",
    "DES" + "IGN.md",
    "mmml" + "-paper",
    "STY" + "LE.md",
)

_SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".ruff_cache", "runs"}
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+).+?\1")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)=[\"']([^\"']+)[\"']", re.I)
_INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REF_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DOC_REF = re.compile(r"(?<![\w./-])docs/((?:[\w-]+/)*[\w.-]*\w\.md)(?:#([\w-]+))?")
_LINE_ANCHOR = re.compile(r"^L\d+(?:-L\d+)?$")


# -- the checker ------------------------------------------------------------------------------


def repo_files(root: Path) -> list[str]:
    """Every file of the repository at ``root`` as a POSIX path relative to it."""
    listed = _git_files(root)
    if listed is None:
        listed = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
            for name in names:
                listed.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted({p for p in listed if (root / p).is_file()})


def _git_files(root: Path) -> list[str] | None:
    """What git lists at ``root`` (tracked and untracked-not-ignored), or None when ``root``
    is not the top of a git checkout (or git is missing)."""
    try:
        top = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if Path(top).resolve() != root.resolve():
            return None
        out = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]


def read_text(path: Path) -> str | None:
    """The file as text, or None for a binary (NUL bytes, not UTF-8) or unreadable file."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def slugify(heading: str) -> str:
    """GitHub's anchor for a heading: links reduced to their text, markup and punctuation
    dropped (letters, digits, ``_``, ``-`` and spaces stay), lower case, spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _prose_lines(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans removed."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        m = _FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark
                continue
            if mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
                continue
        if fence is None:
            yield number, _INLINE_CODE.sub("", line)


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file defines: heading slugs (a repeated slug gets ``-1``,
    ``-2``, ... as on GitHub) and explicit ``<a name=...>`` / ``id=...`` anchors."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in _prose_lines(text):
        found.update(_HTML_ANCHOR.findall(line))
        m = _HEADING.match(line)
        if not m:
            continue
        slug = slugify(m.group(2))
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def markdown_links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link or image and every reference definition
    outside code."""
    links = []
    for number, line in _prose_lines(text):
        targets = _INLINE_LINK.findall(line)
        m = _REF_DEFINITION.match(line)
        if m:
            targets.append(m.group(1))
        links += [(number, t.strip("<>")) for t in targets]
    return links


@cache
def _anchors_of(path: Path) -> frozenset[str]:
    return frozenset(anchors(read_text(path) or ""))


def _inside(root: Path, path: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _check_anchor(target: Path, anchor: str) -> str | None:
    """Why ``anchor`` does not exist in ``target`` (None when it does)."""
    if target.suffix.lower() == ".md":
        if anchor.lower() in _anchors_of(target):
            return None
        return f"no heading with anchor #{anchor} in {target.name}"
    if _LINE_ANCHOR.match(anchor):  # GitHub's line anchors into source files
        return None
    return f"anchor #{anchor} into a file that is not Markdown"


def check_markdown_links(root: Path, files: Sequence[str]) -> list[str]:
    """One message per relative link (or anchor) in the Markdown ``files`` that does not
    resolve to a file or folder inside ``root``."""
    root = root.resolve()
    problems = []
    for rel in files:
        if not rel.lower().endswith(".md"):
            continue
        source = root / rel
        for line, target in markdown_links(read_text(source) or ""):
            if not target or _SCHEME.match(target):  # http(s), mailto, ...: not checked
                continue
            path_part, _, anchor = target.partition("#")
            path_part = urllib.parse.unquote(path_part.split("?", 1)[0])
            if not path_part:
                resolved = source
            elif path_part.startswith("/"):
                resolved = root / path_part.lstrip("/")
            else:
                resolved = source.parent / path_part
            resolved = Path(os.path.normpath(resolved))
            where = f"{rel}:{line}: link {target!r}"
            if not _inside(root, resolved):
                problems.append(f"{where} points outside the repository")
            elif not resolved.exists():
                problems.append(f"{where}: {resolved.relative_to(root).as_posix()} does not exist")
            elif anchor and resolved.is_file():
                why = _check_anchor(resolved, urllib.parse.unquote(anchor))
                if why:
                    problems.append(f"{where}: {why}")
    return problems


def check_doc_references(root: Path, files: Sequence[str]) -> list[str]:
    """One message per ``docs/<page>.md`` (optionally ``#anchor``) written in any text file
    (code comments and docstrings included) whose page or anchor does not exist."""
    problems = []
    for rel in files:
        text = read_text(root / rel)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for m in _DOC_REF.finditer(line):
                page, anchor = root / "docs" / m.group(1), m.group(2)
                where = f"{rel}:{number}: {m.group(0)!r}"
                if not page.is_file():
                    problems.append(f"{where}: docs/{m.group(1)} does not exist")
                elif anchor and (why := _check_anchor(page, anchor)):
                    problems.append(f"{where}: {why}")
    return problems


def check_forbidden(root: Path, files: Sequence[str], forbidden: Sequence[str]) -> list[str]:
    """One message per line of a text file that mentions one of ``forbidden``."""
    problems = []
    for rel in files:
        text = read_text(root / rel)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            problems += [f"{rel}:{number}: mentions {s!r}" for s in forbidden if s in line]
    return problems


# -- the repository -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files() -> list[str]:
    return repo_files(ROOT)


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n" + "\n".join(problems)


def test_the_documentation_pages_exist_and_are_linked(files: list[str]) -> None:
    for page in DOC_PAGES:
        assert f"docs/{page}" in files, f"docs/{page} is missing"
    index = read_text(ROOT / "docs" / "README.md") or ""
    for page in DOC_PAGES[1:]:
        assert f"]({page})" in index, f"docs/README.md does not link {page}"
    readme = read_text(ROOT / "README.md") or ""
    assert "## Documentation" in readme and "](docs/README.md)" in readme, (
        "README.md has no Documentation section pointing to docs/README.md"
    )


def test_markdown_links_resolve(files: list[str]) -> None:
    markdown = [f for f in files if f.lower().endswith(".md")]
    for expected in ("README.md", "CONTRIBUTING.md", "docs/README.md"):
        assert expected in markdown
    assert any(f.startswith("plugins/") and f.endswith("/README.md") for f in markdown)
    problems = check_markdown_links(ROOT, markdown)
    assert not problems, _report(problems)


def test_docs_references_resolve(files: list[str]) -> None:
    problems = check_doc_references(ROOT, files)
    assert not problems, _report(problems)


def test_no_references_to_documents_outside_the_repository(files: list[str]) -> None:
    problems = check_forbidden(ROOT, files, FORBIDDEN)
    assert not problems, _report(problems)


# -- the checker itself ------------------------------------------------------------------------


def test_slugify_matches_github() -> None:
    assert slugify("Width, heads and projections") == "width-heads-and-projections"
    assert slugify("`cross_attn`: the MMML fusion network") == "cross_attn-the-mmml-fusion-network"
    assert slugify("Heads, losses and multi-loss") == "heads-losses-and-multi-loss"
    assert slugify("A [linked](x.md) heading") == "a-linked-heading"
    assert anchors("# Config\n\n## Config\n```\n# not a heading\n```\n") == {"config", "config-1"}


def test_checker_finds_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    # written in pieces, so that this file holds no docs/ reference of its own
    page, missing = "docs" + "/page.md", "docs" + "/missing.md"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Known section\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "\n".join(
            [
                "# Top",
                f"[good]({page}) [good anchor]({page}#known-section)",
                "[self](#top) [web](https://example.com/missing.md) [mail](mailto:a@b.c)",
                f"[broken]({missing})",
                f"[broken anchor]({page}#unknown-section)",
                "`[in code](nowhere.md)`",
                "```",
                "[in a code block](nowhere.md)",
                "```",
                "[outside](../elsewhere.md)",
            ]
        ),
        encoding="utf-8",
    )
    (tmp_path / "module.py").write_text(
        f'"""See {page}#known-section and {missing}; not plugins/x/{missing}."""\n'
        f"# {page}#no-such-heading\n",
        encoding="utf-8",
    )
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "ignored.md").write_text("[broken](nowhere.md)", encoding="utf-8")

    files = repo_files(tmp_path)
    assert files == ["README.md", page, "module.py"]

    problems = check_markdown_links(tmp_path, files)
    assert len(problems) == 3, problems
    assert f"README.md:4: link {missing!r}" in problems[0]
    assert "README.md:5:" in problems[1] and "#unknown-section" in problems[1]
    assert "outside the repository" in problems[2]

    refs = check_doc_references(tmp_path, ["module.py"])
    assert len(refs) == 2, refs
    assert "module.py:1:" in refs[0] and "missing.md does not exist" in refs[0]
    assert "module.py:2:" in refs[1] and "#no-such-heading" in refs[1]


def test_checker_finds_forbidden_mentions(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text(f"fine\nsee {FORBIDDEN[2]}6\n", encoding="utf-8")
    (tmp_path / "data.bin").write_bytes(b"\0" + FORBIDDEN[0].encode())
    problems = check_forbidden(tmp_path, repo_files(tmp_path), FORBIDDEN)
    assert problems == [f"notes.txt:2: mentions {FORBIDDEN[2]!r}"]

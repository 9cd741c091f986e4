"""Nothing in the code or docs points outside the repository.

A user who clones the project sees only its tracked files, so a comment, docstring or page
that says "see SPEC §2.2" (a specification kept elsewhere) or "issue 18's protocol" (a
tracker they may not have) points at nothing. Every tracked text file (*.py, *.md, *.yml,
*.yaml, *.toml, *.cff) is scanned; equations and reasoning belong in docs/methods.md or in
the docstring itself.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".md", ".yml", ".yaml", ".toml", ".cff"}
SKIP_PARTS = {".venv", "site", ".git"}

# Each pattern: a reference to something a clone of this repository does not contain.
OUTSIDE_REFERENCES = [
    ("spec section", re.compile(r"\bSPEC\s*§")),
    ("spec file", re.compile(r"\bSPEC\.md\b")),
    ("spec citation", re.compile(r"\bSPEC:")),
    ("spec citation", re.compile(r"(?:/|\bthe|\bin|\bsee)\s+SPEC\b(?!\s*=)")),
    ("issue number", re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)),
    ("issue reference", re.compile(r"\bthe issue(?:'s|’s|\s+that\b)", re.IGNORECASE)),
    ("issue reference", re.compile(r"\(issue\b", re.IGNORECASE)),
]
# The checker's own patterns and its planted-line test name what they look for.
SELF = {Path(__file__).resolve()}


def outside_references(text: str) -> list[tuple[int, str, str]]:
    """(line number, kind, line) of every reference in `text` to something outside the repo."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in OUTSIDE_REFERENCES:
            if pattern.search(line):
                found.append((number, kind, line.strip()))
                break
    return found


def tracked_text_files(root: Path = ROOT) -> list[Path]:
    """The tracked files the check reads (git ls-files), less .venv, site/ and .git."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
    paths = []
    for name in out.stdout.decode().split("\0"):
        if not name:
            continue
        path = root / name
        if path.suffix not in SUFFIXES or SKIP_PARTS & set(Path(name).parts):
            continue
        if path.is_file() and path.resolve() not in SELF:
            paths.append(path)
    return paths


def check_files(paths) -> list[str]:
    """One 'path:line: kind: text' entry per outside reference in the given files."""
    problems = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        for number, kind, line in outside_references(text):
            problems.append(f"{path}:{number}: {kind}: {line[:120]}")
    return problems


def test_no_reference_outside_the_repository():
    paths = tracked_text_files()
    assert len(paths) > 20, "git ls-files found almost nothing: is this a checkout?"
    problems = check_files(paths)
    assert not problems, (
        "references to something outside the repository (say it in a few words, or point at "
        "docs/methods.md):\n" + "\n".join(problems))


def test_the_check_fails_on_a_planted_spec_reference(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""A loss.\n\nThe equation is in SPEC §1."""\n', encoding="utf-8")
    problems = check_files([planted])
    assert len(problems) == 1 and ":3: spec section:" in problems[0], problems


def test_the_check_fails_on_each_kind_and_passes_plain_text(tmp_path):
    bad = ["see SPEC.md", "SPEC: the metrics", "equation in the docstring / SPEC, never",
           "issue 18's protocol", "(issue #12)", "the issue's first Must-show", "(issue: a score)"]
    for line in bad:
        assert outside_references(line), line
    good = ["SPEC = register(MethodSpec(", "spec.name", "a MethodSpec's defaults",
            "docs/methods.md, Deep CCA", "this is no issue for the solver"]
    for line in good:
        assert not outside_references(line), line

"""MkDocs hook: one documentation page per committed results folder, built from the folder.

Each folder under `tables/results/` becomes `results/<folder>.md`: its Markdown tables in
name order (each table's own headings moved one level down), then its plots, then links to
its CSV files. Nothing is copied by hand, so the pages always show the committed numbers.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "tables" / "results"


def _folders() -> list[Path]:
    return sorted(p for p in RESULTS.iterdir() if p.is_dir()) if RESULTS.is_dir() else []


def _demote(markdown: str) -> str:
    """Move every ATX heading one level down, so the page keeps a single H1."""
    out = []
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            line = "#" + line
        out.append(line)
    return "\n".join(out)


def render(folder: Path) -> str:
    """The page for one results folder (Markdown)."""
    name = folder.name
    parts = [f"# {name}", "",
             f"Generated at build time from `tables/results/{name}/` "
             "(the committed tables, plots and per-trial CSV files).", ""]
    for table in sorted(folder.glob("*.md")):
        parts += [f"<small>`{table.name}`</small>", "", _demote(table.read_text(encoding="utf-8")), ""]
    pngs = sorted(folder.glob("*.png"))
    if pngs:
        parts += ["## Plots", ""]
        for png in pngs:
            parts += [f"![{png.stem}]({name}/{png.name})", "", f"<small>`{png.name}`</small>", ""]
    csvs = sorted(folder.glob("*.csv"))
    if csvs:
        parts += ["## Data", ""]
        parts += [f"- [`{c.name}`]({name}/{c.name})" for c in csvs]
        parts.append("")
    return "\n".join(parts)


def on_config(config):
    """Add one entry per results folder under "Results" in the navigation."""
    for section in config.nav or []:
        if isinstance(section, dict) and "Results" in section:
            entries = [e for e in section["Results"] if e == "results/index.md"]
            entries += [{f.name: f"results/{f.name}.md"} for f in _folders()]
            section["Results"] = entries
    return config


def on_files(files, config):
    for folder in _folders():
        files.append(File.generated(config, f"results/{folder.name}.md", content=render(folder)))
        for data in sorted(folder.iterdir()):
            if data.suffix in {".png", ".csv"}:
                files.append(File.generated(config, f"results/{folder.name}/{data.name}",
                                            abs_src_path=str(data)))
    return files

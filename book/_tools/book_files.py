"""The book's pages as its table of contents lists them.

Shared by the scripts in this folder and by the tests (tests/_book.py).
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def toc_entries() -> list[str]:
    """Every file named in _toc.yml, root first, without suffixes."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]]
    pending = list(toc.get("parts", [])) + list(toc.get("chapters", []))
    while pending:
        entry = pending.pop(0)
        if "file" in entry:
            entries.append(entry["file"])
        pending += entry.get("chapters", []) + entry.get("sections", [])
    return entries


def toc_notebooks() -> list[Path]:
    """The notebooks among the table of contents' entries, in reading order."""
    return [ROOT / f"{entry}.ipynb" for entry in toc_entries() if (ROOT / f"{entry}.ipynb").exists()]

"""The book's table of contents, as the tests see it."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toc_entries() -> list[str]:
    """Every file named in _toc.yml, root first, without suffixes."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"]]
    pending = list(toc.get("parts", [])) + list(toc.get("chapters", []))
    while pending:
        entry = pending.pop(0)
        if "file" in entry:
            entries.append(entry["file"])
        pending += entry.get("chapters", []) + entry.get("sections", [])
    return entries

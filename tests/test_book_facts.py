"""Lists in the book that drift as nnsave grows are checked against the package itself."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

from _book import ROOT  # noqa: E402

from nnsave.book import figures  # noqa: E402
from nnsave.formats import registered_handlers, registered_suffixes  # noqa: E402

_SUFFIX = re.compile(r"`(\.[a-z0-9.]+)`")


def _markdown_tables(text: str) -> list[str]:
    """Each markdown table in ``text``: its consecutive lines that start with '|'."""
    tables, current = [], []
    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    if current:
        tables.append("\n".join(current))
    return tables


def _notebook_markdown(name: str) -> str:
    notebook = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
    return "\n\n".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown")


def test_choosing_a_format_tables_name_every_registered_format():
    tables = _markdown_tables(_notebook_markdown("choosing_format"))
    named = {suffix for table in tables for suffix in _SUFFIX.findall(table)}
    assert set(registered_suffixes()) <= named, f"missing from the tables: {set(registered_suffixes()) - named}"


def test_the_format_flowchart_leads_to_every_registered_format():
    figure = figures.format_flowchart()
    texts = " ".join(text.get_text() for text in figure.axes[0].texts)
    missing = [suffix for suffix in registered_suffixes() if suffix not in texts]
    assert not missing, f"the flowchart has no box for {missing}"


def _list_tables(rst: str) -> list[list[list[str]]]:
    """The rows of each ``list-table`` in a reStructuredText page."""
    tables = []
    for block in rst.split(".. list-table::")[1:]:
        rows = []
        for line in block.splitlines()[1:]:
            if line.startswith("   * - "):
                rows.append([line.removeprefix("   * - ")])
            elif line.startswith("     - ") and rows:
                rows[-1].append(line.removeprefix("     - "))
            elif line.strip() and not line.startswith("   "):
                break
        tables.append(rows)
    return tables


def test_the_api_pages_manifest_table_lists_exactly_the_registered_formats():
    page = (ROOT / "book" / "api.rst").read_text()
    table = next(rows for rows in _list_tables(page) if rows[0][0] == "``format``")
    listed = {(name.strip("`"), suffix.strip("`")) for name, suffix, _ in table[1:]}
    registered = {(handler.name, suffix) for handler in registered_handlers() for suffix in handler.suffixes}
    assert listed == registered

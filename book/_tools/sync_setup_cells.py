"""Put the cell that installs nnsave first in every notebook of the book.

A reader who opens a chapter on Colab, or downloads it alone, may have no
nnsave; this cell installs it there and does nothing, silently, wherever nnsave
is installed already (the repository's environment, Binder, a pip install). The
book hides the cell (tag remove-input).

It installs from the repository named in _config.yml (``repository.url``), the
one place the book's address is written. While that is empty, the cell stops
with a message that says how to install nnsave instead.

Run it from the repository's root after changing that URL or this file, then
re-execute the notebooks (``make notebooks``):

    python book/_tools/sync_setup_cells.py           # update the notebooks
    python book/_tools/sync_setup_cells.py --check   # exit 1 if any is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml
from book_files import ROOT, toc_notebooks

CELL_ID = "install-nnsave"
TAGS = ["remove-input", CELL_ID]
# The extra for running the notebooks: Keras, scikit-learn, matplotlib (pyproject.toml).
EXTRAS = "book"

_HEADER = '''\
# Install nnsave if this environment lacks it (on Colab, or when this
# notebook was downloaded alone). Where nnsave is installed, this does nothing.
import importlib.util
'''

_INSTALL = '''\
import subprocess
import sys

if importlib.util.find_spec("nnsave") is None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet",
         "nnsave[{extras}] @ git+{url}"],
        check=True,
    )
    importlib.invalidate_caches()'''

_EXPLAIN = '''\

if importlib.util.find_spec("nnsave") is None:
    raise ModuleNotFoundError(
        "This notebook needs the nnsave package. Install it in this environment "
        "as the book's page 'Run it yourself' explains, then run the notebook again."
    )'''


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """The book's repository URL from _config.yml, without a trailing slash ("" if unset)."""
    repository = yaml.safe_load(config.read_text()).get("repository") or {}
    return (repository.get("url") or "").strip().rstrip("/")


def setup_source(url: str) -> str:
    """The source of the setup cell for a repository URL ("" while there is none)."""
    if url:
        return _HEADER + _INSTALL.format(extras=EXTRAS, url=url)
    return _HEADER + _EXPLAIN


def _is_setup_cell(cell) -> bool:
    return cell.get("id") == CELL_ID or CELL_ID in cell.get("metadata", {}).get("tags", [])


def _is_current_cell(cell, source: str) -> bool:
    return cell.cell_type == "code" and cell.source == source and cell.metadata.get("tags") == TAGS


def is_current(path: Path, url: str) -> bool:
    """Whether the notebook already starts with the setup cell for this URL."""
    cells = nbformat.read(path, as_version=4).cells
    return bool(cells) and _is_current_cell(cells[0], setup_source(url))


def sync(path: Path, url: str) -> bool:
    """Make the notebook's first cell the setup cell; return whether the file changed.

    A new or changed cell has no outputs yet: re-execute the notebook afterwards.
    """
    notebook = nbformat.read(path, as_version=4)
    source = setup_source(url)
    if notebook.cells and _is_current_cell(notebook.cells[0], source):
        return False
    if notebook.cells and _is_setup_cell(notebook.cells[0]):
        notebook.cells.pop(0)
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(TAGS)})
    cell.id = CELL_ID
    notebook.cells.insert(0, cell)
    nbformat.write(notebook, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in _toc.yml")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of date")
    arguments = parser.parse_args(argv)
    url = repository_url()
    notebooks = arguments.notebooks or toc_notebooks()
    if arguments.check:
        stale = [path for path in notebooks if not is_current(path, url)]
        for path in stale:
            print(f"out of date: {path}")
        return 1 if stale else 0
    for path in notebooks:
        if sync(path, url):
            print(f"updated: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

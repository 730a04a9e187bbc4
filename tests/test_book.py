"""Every notebook in the table of contents exists and was executed with its outputs stored."""

import json

import pytest
from _book import ROOT, toc_entries, toc_notebooks


def _source(entry):
    candidates = [ROOT / f"{entry}{suffix}" for suffix in (".ipynb", ".md")]
    return next((path for path in candidates if path.exists()), None)


@pytest.mark.parametrize("entry", toc_entries())
def test_toc_entry_exists(entry):
    assert _source(entry) is not None, f"{entry} is listed in _toc.yml but has no .ipynb or .md file"


def test_the_book_has_notebooks():
    assert toc_notebooks()


@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda path: path.stem)
def test_notebook_cells_were_executed(path):
    entry = path.stem
    notebook = json.loads(path.read_text())
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code" and "".join(cell["source"]).strip():
            assert cell.get("execution_count") is not None, f"{entry}: code cell {index} never ran"
            text = json.dumps(cell.get("outputs", []))
            for leak in ("/tmp/", "/root/", "site-packages", "NBVAL_IGNORE_OUTPUT"):
                assert leak not in text + "".join(cell["source"]), f"{entry}: cell {index} holds {leak!r}"


def test_no_notebook_is_left_out_of_the_toc():
    listed = {str(ROOT / f"{entry}.ipynb") for entry in toc_entries()}
    on_disk = {str(path) for path in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in path.parts}
    assert on_disk - listed == set()

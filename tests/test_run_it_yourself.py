"""The ways a reader runs a chapter: the setup cell that installs nnsave on Colab,
the script that writes it (book/_tools/sync_setup_cells.py), and Binder."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib

import nbformat
import pytest
import yaml
from _book import ROOT, toc_entries, toc_notebooks

import sync_setup_cells as setup

URL = "https://github.com/example/nnsave"


def _notebook(path, *cells):
    notebook = nbformat.v4.new_notebook(cells=list(cells))
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda path: path.stem)
def test_notebook_starts_with_the_current_setup_cell(path):
    assert setup.is_current(path, setup.repository_url()), (
        "run `python book/_tools/sync_setup_cells.py`, then re-execute the notebook"
    )


def test_sync_inserts_the_cell_once_and_replaces_it_when_the_url_changes(tmp_path):
    title = nbformat.v4.new_markdown_cell("(chapter-x)=\n# A chapter")
    path = _notebook(tmp_path / "chapter.ipynb", title, nbformat.v4.new_code_cell("import nnsave"))

    assert setup.sync(path, "") is True
    written = path.read_bytes()
    assert setup.sync(path, "") is False and path.read_bytes() == written

    assert setup.sync(path, URL) is True
    cells = nbformat.read(path, as_version=4).cells
    assert [cell.cell_type for cell in cells] == ["code", "markdown", "code"]
    assert cells[0].id == "install-nnsave" and cells[0].metadata.tags == ["remove-input", "install-nnsave"]
    assert f"git+{URL}" in cells[0].source and cells[0].outputs == []
    assert setup.main(["--check", str(path)]) == 1, "the URL in _config.yml is not the example's"
    assert setup.sync(path, setup.repository_url()) is True
    assert setup.main(["--check", str(path)]) == 0


def test_repository_url_is_read_from_the_config(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text(yaml.safe_dump({"repository": {"url": URL + "/", "branch": "main"}}))
    assert setup.repository_url(config) == URL
    config.write_text(yaml.safe_dump({"repository": {"url": ""}}))
    assert setup.repository_url(config) == ""


@pytest.mark.parametrize("url", ["", URL])
def test_setup_cell_is_silent_where_nnsave_is_installed(url):
    result = subprocess.run([sys.executable, "-c", setup.setup_source(url)], capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.fixture
def nnsave_missing(monkeypatch):
    """Run a setup cell as if nnsave were not installed, recording what it would run."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "nnsave" else find_spec(name, *args))
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **options: commands.append((command, options)))
    return commands


def test_setup_cell_installs_nnsave_from_the_repository(nnsave_missing):
    exec(setup.setup_source(URL), {})
    install = [sys.executable, "-m", "pip", "install", "--quiet", f"nnsave[book] @ git+{URL}"]
    assert nnsave_missing == [(install, {"check": True})]


def test_without_a_repository_url_the_setup_cell_says_what_to_do(nnsave_missing):
    with pytest.raises(ModuleNotFoundError, match="Run it yourself"):
        exec(setup.setup_source(""), {})
    assert nnsave_missing == []


def test_binder_installs_nnsave_with_the_pinned_environment():
    # repo2docker reads a binder/ or .binder/ folder instead of the root's files
    # when there is one; there is none, so it builds environment.yml, whose pip
    # section installs this repository (`-e .`) next to the pins.
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert "-e ." in pip
    assert any(line.startswith("jupyterlab==") for line in pip)


def test_run_it_yourself_page_is_in_the_book_and_names_real_extras():
    assert "book/run_it_yourself" in toc_entries()
    page = (ROOT / "book" / "run_it_yourself.md").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {extra for group in re.findall(r"nnsave\[([\w,]+)\]", page) for extra in group.split(",")}
    assert named and named <= set(extras)
    for route in ("make lab", "Colab", "Binder"):
        assert route in page

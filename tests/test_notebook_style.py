"""The book's conventions that a reader notices, checked in every notebook.

- Width: no code line and no stored output line is wider than 88 columns, so
  that nothing scrolls sideways in the book (a CJK character takes two columns).
- Figures: every figure carries alt text and a caption in its cell metadata.
- Glossary: every chapter links at least one glossary term.
- Exercises: every chapter ends with exercises whose solutions are gated
  (solution-start / solution-end around code cells), so nbval runs them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from _book import toc_notebooks

MAX_COLUMNS = 88
NOTEBOOKS = toc_notebooks()
IMAGE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# Markdown fences: ``` or ~~~ for code, ``` or ::: with {name} for a MyST directive.
FENCE = re.compile(r"^(`{3,}|~{3,}|:{3,})\s*(\{([\w-]+)\})?\s*(.*)$")
CODE_DIRECTIVES = {None, "code", "code-block", "code-cell"}


def _cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        cell["text"] = "".join(cell["source"])
    return cells


def _columns(line: str) -> int:
    line = line.expandtabs(8)
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line)


def _too_wide(where: str, text: str) -> list[str]:
    return [
        f"{where}, line {number}: {_columns(line)} columns: {line[:60]}..."
        for number, line in enumerate(text.splitlines(), start=1)
        if _columns(line) > MAX_COLUMNS
    ]


def _scan_fences(markdown: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The directives a markdown cell opens, as (name, argument), and its code blocks' bodies.

    Fences nest the CommonMark way: a bare fence of the same character, at least
    as long as the innermost open one, closes it; nothing opens inside code.
    """
    directives, code_blocks, open_fences = [], [], []  # open_fences: (fence, body or None)
    for line in markdown.splitlines():
        match = FENCE.match(line)
        innermost = open_fences[-1] if open_fences else None
        fence = match.group(1) if match else ""
        closes = (
            innermost is not None and match and not match.group(2) and not match.group(4)
            and fence[0] == innermost[0][0] and len(fence) >= len(innermost[0])
        )
        if closes:
            _, body = open_fences.pop()
            if body is not None:
                code_blocks.append("\n".join(body))
        elif innermost is not None and innermost[1] is not None:
            innermost[1].append(line)
        elif match:
            name = match.group(3)
            if name:
                directives.append((name, match.group(4).strip()))
            is_code = fence[0] != ":" and name in CODE_DIRECTIVES
            open_fences.append((fence, [] if is_code else None))
    return directives, code_blocks


def _shown_text(output: dict) -> str:
    """The text a reader sees for one stored output (empty when an image or HTML shows)."""
    if output["output_type"] == "stream":
        return "".join(output["text"])
    if output["output_type"] == "error":
        return ANSI_ESCAPE.sub("", "\n".join(output["traceback"]))
    data = output.get("data", {})
    if any(kind in data for kind in (*IMAGE_TYPES, "text/html", "text/markdown", "text/latex")):
        return ""
    return "".join(data.get("text/plain", ""))


def _directives(cells: list[dict]) -> list[tuple[int, str, str, str]]:
    """(cell index, directive name, argument, whole cell text) for each MyST directive."""
    return [
        (index, name, argument, cell["text"])
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "markdown"
        for name, argument in _scan_fences(cell["text"])[0]
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_code_lines_fit_in_88_columns(path):
    problems = []
    for index, cell in enumerate(_cells(path)):
        if cell["cell_type"] == "code":
            problems += _too_wide(f"code cell {index}", cell["text"])
        elif cell["cell_type"] == "markdown":
            for block in _scan_fences(cell["text"])[1]:
                problems += _too_wide(f"code block in markdown cell {index}", block)
    assert problems == [], f"{len(problems)} lines wider than {MAX_COLUMNS} columns:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_output_lines_fit_in_88_columns(path):
    problems = []
    for index, cell in enumerate(_cells(path)):
        for output in cell.get("outputs", []):
            problems += _too_wide(f"output of cell {index}", _shown_text(output))
    assert problems == [], f"{len(problems)} lines wider than {MAX_COLUMNS} columns:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_figure_has_alt_text_and_a_caption(path):
    problems = []
    for index, cell in enumerate(_cells(path)):
        shows_image = any(kind in output.get("data", {}) for output in cell.get("outputs", []) for kind in IMAGE_TYPES)
        if not shows_image:
            continue
        mystnb = cell["metadata"].get("mystnb", {})
        alt = mystnb.get("image", {}).get("alt", "").strip()
        figure = mystnb.get("figure", {})
        if not alt or re.search(r"\.(png|svg|jpe?g)$|^[0-9a-f]{16,}", alt):
            problems.append(f"cell {index}: mystnb.image.alt must say what the figure shows (got {alt!r})")
        if not figure.get("caption", "").strip() or not figure.get("name"):
            problems.append(f"cell {index}: mystnb.figure needs a caption and a name")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_chapter_links_the_glossary(path):
    markdown = "".join(cell["text"] for cell in _cells(path) if cell["cell_type"] == "markdown")
    assert "{term}`" in markdown, "no {term}`...` link to the glossary"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_chapter_ends_with_exercises_whose_solutions_run(path):
    cells = _cells(path)
    directives = _directives(cells)
    headings = [index for index, cell in enumerate(cells) if re.search(r"^## Exercises\s*$", cell["text"], re.M)]
    exercises = [(index, text) for index, name, _, text in directives if name == "exercise"]
    assert headings and exercises, "the chapter has no `## Exercises` section with {exercise} directives"
    assert all(index >= headings[0] for index, _ in exercises), "an exercise comes before `## Exercises`"
    assert [name for _, name, _, _ in directives if name == "solution"] == [], (
        "a {solution} directive is not executed: write it as solution-start / solution-end"
    )
    labels = [re.search(r"^:label:\s*(\S+)", text, re.M) for _, text in exercises]
    assert all(labels), "every exercise needs a :label: for its solution"

    starts = {argument: index for index, name, argument, _ in directives if name == "solution-start"}
    ends = sorted(index for index, name, _, _ in directives if name == "solution-end")
    for label in (match.group(1) for match in labels):
        assert label in starts, f"exercise {label} has no solution-start"
    for label, start in starts.items():
        end = next((index for index in ends if index > start), None)
        assert end is not None, f"solution {label} has no solution-end"
        assert not [index for index in starts.values() if start < index < end], f"solution {label} is not closed"
        for index in (start, end):
            fences = [line for line in cells[index]["text"].splitlines() if FENCE.match(line)]
            assert len(fences) == 2, f"cell {index}: a solution-start or solution-end must be alone in its cell"
        between = cells[start + 1 : end]
        assert any(cell["cell_type"] == "code" for cell in between), f"solution {label} has no code cell to run"

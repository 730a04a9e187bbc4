"""Every notebook in the table of contents exists and was executed with its outputs stored."""

import json
import re

import pytest
from _book import ROOT, toc_entries, toc_notebooks


def _source(entry):
    candidates = [ROOT / f"{entry}{suffix}" for suffix in (".ipynb", ".md", ".rst")]
    return next((path for path in candidates if path.exists()), None)


@pytest.mark.parametrize("entry", toc_entries())
def test_toc_entry_exists(entry):
    assert _source(entry) is not None, f"{entry} is listed in _toc.yml but has no .ipynb, .md or .rst file"


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


def _glossary_terms() -> set[str]:
    """The terms defined in book/glossary.md, lower-cased as Sphinx matches them."""
    block = (ROOT / "book" / "glossary.md").read_text().split("```{glossary}")[1].split("\n```")[0]
    return {line.strip().lower() for line in block.splitlines() if line.strip() and not line[0].isspace() and line[0] != ":"}


def _page_markdown(entry: str) -> str:
    notebook = ROOT / f"{entry}.ipynb"
    if notebook.exists():
        cells = json.loads(notebook.read_text())["cells"]
        return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    return _source(entry).read_text()


@pytest.mark.parametrize("entry", toc_entries())
def test_glossary_links_name_a_glossary_term(entry):
    """{term}`epoch` and {term}`epochs <epoch>` (:term: in reStructuredText) must name a term of the glossary."""
    terms = _glossary_terms()
    linked = [re.sub(r"^.*<(.+)>$", r"\1", text, flags=re.S)
              for text in re.findall(r"(?:\{term\}|:term:)`([^`]+)`", _page_markdown(entry))]
    assert [term for term in linked if " ".join(term.split()).lower() not in terms] == []


def test_intro_maps_every_page_and_links_glossary_and_index():
    intro = (ROOT / "book" / "intro.md").read_text()
    first_label = re.compile(r"\s*(?:\(([\w-]+)\)=|\.\. _([\w-]+):)")  # MyST (label)= or rst .. _label:
    labels = {entry: first_label.match(_page_markdown(entry)) for entry in toc_entries()[1:]}
    assert [entry for entry, label in labels.items() if label is None] == [], "pages without a label first"
    labels = {entry: label.group(1) or label.group(2) for entry, label in labels.items()}
    unmapped = [entry for entry, label in labels.items() if not re.search(rf"\{{ref\}}`([^`<]*<)?{label}>?`", intro)]
    assert unmapped == [], "pages the intro's chapter map does not link"
    assert "<genindex>`" in intro and "<chapter-glossary>`" in intro


# CommonMark forbids a backtick in the info string of a backtick fence, so
# ```{admonition} A title with `code` ... is printed as text, not as a box.
_BACKTICK_DIRECTIVE = re.compile(r"^`{3,}\{[a-z-]+\}.*`", re.MULTILINE)


@pytest.mark.parametrize("entry", toc_entries())
def test_no_directive_title_with_code_sits_in_a_backtick_fence(entry):
    path = _source(entry)
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    else:
        text = path.read_text()
    assert _BACKTICK_DIRECTIVE.findall(text) == [], "use a colon fence, :::{directive}, for such a title"

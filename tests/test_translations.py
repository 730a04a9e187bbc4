"""The Chinese edition: complete catalogues, in step with the English text and figures.

The edition is built from the English pages through Sphinx's gettext
translation (book/_tools/editions.py). A catalogue that misses a message, or
holds a translation of an English text that has since changed, shows English
sentences in the middle of a Chinese page; these tests fail first.
"""

from __future__ import annotations

import json
import sys

import nbformat
import pytest
from _book import ROOT, toc_entries, toc_notebooks
from babel.messages.pofile import read_po

sys.path.insert(0, str(ROOT / "book" / "_tools"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import editions  # noqa: E402 - the book's tools are not a package
from book_html import edition_links, figure_folder, translated_figure  # noqa: E402

LANGUAGE = "zh_CN"
CATALOGUES = ROOT / "locale" / LANGUAGE / "LC_MESSAGES"


def _messages(path) -> set[str]:
    with path.open("rb") as handle:
        return {str(message.id) for message in read_po(handle) if message.id}


@pytest.fixture(scope="module")
def english_messages(tmp_path_factory):
    """Every translatable message of the book as the English pages stand now."""
    return editions.extract_messages(tmp_path_factory.mktemp("gettext"))


# --------------------------------------------------------------------------- catalogues


@pytest.mark.parametrize("entry", toc_entries())
def test_every_message_of_the_page_is_translated_with_its_markup_and_terms(entry):
    catalogue = CATALOGUES / f"{entry}.po"
    assert catalogue.exists(), f"{entry} has no catalogue; run `make translations`"
    assert editions.catalogue_problems(catalogue) == []


@pytest.mark.parametrize("entry", toc_entries())
def test_the_catalogue_holds_the_current_english_text(english_messages, entry):
    """Changing an English sentence without updating the catalogue fails here."""
    english = _messages(english_messages / f"{entry}.pot")
    translated = _messages(CATALOGUES / f"{entry}.po")
    assert english - translated == set(), "English text with no translation; run `make translations`"
    assert translated - english == set(), "translations of text the page no longer has; run `make translations`"


def test_an_english_edit_shows_up_as_a_fuzzy_message_that_the_check_reports(tmp_path):
    """What `make translations` leaves after an English edit is what the first test rejects."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    catalogue = Catalog(locale=LANGUAGE)
    catalogue.add("The {term}`epoch` ends.", "{term}`轮次 <epoch>`结束。", flags=["fuzzy"])
    catalogue.add("A new sentence.", "")
    path = tmp_path / "page.po"
    with path.open("wb") as handle:
        write_po(handle, catalogue)
    problems = editions.catalogue_problems(path)
    assert sorted(problem.split("': ", 1)[1] for problem in problems) == [
        "fuzzy (the English changed; check the translation)", "untranslated"]


# --------------------------------------------------------------------------- one message


TERMS = {"epoch": "轮次", "digest": "摘要（哈希值）", "pickle": "pickle 序列化"}


@pytest.mark.parametrize(
    ("original", "translation"),
    [
        ("Train for ten {term}`epochs <epoch>`.", "训练十个{term}`轮次 <epoch>`。"),
        ("The {term}`digest` matches.", "{term}`摘要 <digest>`一致。"),
        ("A {term}`pickle` runs code.", "{term}`pickle <pickle>` 会运行代码。"),
        ("See {ref}`chapter-quickstart`.", "见{ref}`chapter-quickstart`。"),
        ("The {ref}`glossary <chapter-glossary>`.", "{ref}`术语表 <chapter-glossary>`。"),
        ("Call `nnsave.load(path)` on $x^2$.", "对 $x^2$ 调用 `nnsave.load(path)`。"),
        ("Read [the docs](https://keras.io)[^1].", "请读[文档](https://keras.io)[^1]。"),
        ("Call :func:`nnsave.load` on ``path``.", "对 ``path`` 调用 :func:`nnsave.load`。"),  # docstrings
    ],
)
def test_a_faithful_translation_has_no_problems(original, translation):
    assert editions.message_problems(original, translation, TERMS) == []


@pytest.mark.parametrize(
    ("original", "translation", "problem"),
    [
        ("Ten {term}`epochs <epoch>`.", "十个{term}`训练轮数 <epoch>`。", "glossary's name '轮次'"),
        ("Ten {term}`epochs <epoch>`.", "十个轮次。", "roles differ"),
        ("After ten epochs.", "十个训练轮数之后。", "the glossary's term is '轮次'"),
        ("See {ref}`chapter-quickstart`.", "见{ref}`chapter-safety`。", "roles differ"),
        ("Call `nnsave.load(path)`.", "调用 `nnsave.load(路径)`。", "code differ"),
        ("On $x^2$.", "在 x² 上。", "maths differ"),
        ("Read [the docs](https://keras.io).", "请读[文档](https://keras.io/)。", "links differ"),
        ("A note[^1].", "一条说明。", "footnotes differ"),
        ("See :func:`nnsave.load`.", "见 :func:`nnsave.save`。", "roles differ"),
        ("Pass ``key=``.", "传入 ``密钥=``。", "code differ"),
    ],
)
def test_a_translation_that_changes_markup_or_a_term_is_reported(original, translation, problem):
    problems = editions.message_problems(original, translation, TERMS)
    assert any(problem in found for found in problems), problems


def test_the_glossary_is_the_single_source_of_the_chinese_terms():
    terms = editions.glossary_terms()
    assert terms["epoch"] == "轮次"
    assert terms["momentum"] == "动量"  # one entry, four terms, four names
    assert terms["sgd"] == terms["stochastic gradient descent"] == "随机梯度下降"
    with (CATALOGUES / "book" / "glossary.po").open("rb") as glossary:
        translated = {str(message.id): message.string for message in read_po(glossary) if message.id}
    assert translated["Epoch"].startswith("轮次")


# --------------------------------------------------------------------------- figures


@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda path: path.stem)
def test_each_figure_has_a_chinese_drawing_in_step_with_the_english_one(path):
    stamps = json.loads((figure_folder(ROOT, LANGUAGE) / "stamps.json").read_text())
    for cell_id, png in editions.figure_cells(nbformat.read(path, as_version=4)).items():
        key = f"{path.stem}/{cell_id}"
        assert translated_figure(ROOT, LANGUAGE, f"book/{path.stem}", cell_id) is not None, (
            f"{key}: no Chinese drawing; run `make figures-zh NB={path.relative_to(ROOT)}`")
        assert stamps.get(key) == editions.figure_stamp(png), (
            f"{key}: the English figure changed since the Chinese one was drawn; "
            f"run `make figures-zh NB={path.relative_to(ROOT)}`")


def test_a_drawing_of_another_language_or_a_missing_one_is_not_used(tmp_path):
    (figure_folder(tmp_path, LANGUAGE) / "training").mkdir(parents=True)
    (figure_folder(tmp_path, LANGUAGE) / "training" / "abc.png").write_bytes(b"png")
    assert translated_figure(tmp_path, LANGUAGE, "book/training", "abc") is not None
    assert translated_figure(tmp_path, LANGUAGE, "book/training", "other") is None
    assert translated_figure(tmp_path, "en", "book/training", "abc") is None


# --------------------------------------------------------------------------- editions


def test_each_page_links_to_the_same_page_in_the_other_edition():
    assert edition_links("book/intro", "en") == [("zh_CN", "简体中文", "../zh_CN/book/intro.html")]
    assert edition_links("book/intro", "zh_CN") == [("en", "English", "../../book/intro.html")]
    assert edition_links("genindex", "zh_CN") == [("en", "English", "../genindex.html")]


def test_the_chinese_configuration_differs_from_the_english_one_only_in_language():
    english = editions.yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    chinese = editions.edition_config(LANGUAGE)
    assert chinese["sphinx"]["config"]["language"] == LANGUAGE
    assert chinese["title"] != english["title"]
    for key in ("execute", "parse", "exclude_patterns", "only_build_toc_files"):
        assert chinese[key] == english[key]
    shared = {key: value for key, value in english["sphinx"]["config"].items() if key != "locale_dirs"}
    assert {key: chinese["sphinx"]["config"][key] for key in shared} == shared

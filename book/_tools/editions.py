"""The book's editions: English, and the Chinese edition built from the same pages.

The Chinese edition shares every notebook, code cell and output with the
English one; only its prose comes from the message catalogues under
``locale/zh_CN/LC_MESSAGES`` (Sphinx's gettext translation), and its figures
from ``locale/zh_CN/figures`` (see :mod:`book._ext.book_html`).

    python book/_tools/editions.py build zh_CN   # the edition, into _build/html/zh_CN
    python book/_tools/editions.py update        # catalogues after an English edit
    python book/_tools/editions.py figures       # the Chinese figures, from the notebooks
    python book/_tools/editions.py check [PO...] # untranslated, fuzzy or inconsistent messages

``make book`` runs the first, ``make translations`` the second and
``make figures-zh`` the third.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

from book_html import figure_folder  # noqa: E402 - where the book's extension looks for figures

BIN = Path(sys.executable).parent
BUILD = ROOT / "_build"
LOCALE = ROOT / "locale"

#: Each translated edition, by its language code (published under _build/html/<code>),
#: with what its configuration changes besides the language.
EDITIONS = {
    "zh_CN": {
        "title": "用 Python 保存和加载神经网络",
        "author": "nnsave 开发者",
    },
}


def edition_config(language: str) -> dict:
    """The English _config.yml, changed for ``language``.

    Jupyter Book resolves ``local_extensions`` against the configuration
    file's folder, so the copy (which lives under _build) names them by
    absolute path; every other path is resolved against the book's root.
    """
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config.update(EDITIONS[language])
    sphinx = config["sphinx"]
    sphinx["config"]["language"] = language
    sphinx["config"]["locale_dirs"] = [str(LOCALE)]
    sphinx["local_extensions"] = {
        name: str(ROOT / path) for name, path in sphinx["local_extensions"].items()
    }
    return config


def _jupyter_book(*arguments: str) -> None:
    subprocess.run([str(BIN / "jupyter-book"), "build", str(ROOT), *arguments], check=True)


def build(language: str) -> Path:
    """Build ``language``'s edition strictly and publish it under _build/html/<language>."""
    work = BUILD / "editions" / language
    work.mkdir(parents=True, exist_ok=True)
    config_file = work / "_config.yml"
    config_file.write_text(yaml.safe_dump(edition_config(language), allow_unicode=True, sort_keys=False),
                           encoding="utf-8")
    _jupyter_book("-W", "-n", "--keep-going", "--config", str(config_file), "--path-output", str(work))
    published = BUILD / "html" / language
    shutil.rmtree(published, ignore_errors=True)
    shutil.copytree(work / "_build" / "html", published)
    return published


def extract_messages(output: Path) -> Path:
    """Every translatable message of the book, one ``.pot`` file per page, under ``output``."""
    _jupyter_book("--builder", "custom", "--custom-builder", "gettext", "--path-output", str(output))
    return output / "_build" / "gettext"


def update(languages: list[str]) -> None:
    """Bring each language's catalogues in step with the English text.

    New messages arrive untranslated, changed ones are marked fuzzy with the
    old translation as a starting point, and tests/test_translations.py fails
    until a translator has dealt with both.
    """
    with tempfile.TemporaryDirectory() as scratch:
        templates = extract_messages(Path(scratch))
        command = [str(BIN / "sphinx-intl"), "update", "--pot-dir", str(templates),
                   "--locale-dir", str(LOCALE), "--line-width", "-1"]
        for language in languages:
            command += ["--language", language]
        subprocess.run(command, check=True)


# --------------------------------------------------------------------------- checks

#: Inline markup that a translation must carry over unchanged: roles with their
#: targets, code, maths, link targets and footnote references.
_ROLE = re.compile(r"(?:\{(\w+(?::\w+)*)\}|(?<![\w`]):(\w+(?::\w+)*):)`([^`]*)`")  # MyST or rst
_CODE = re.compile(r"(?<![`}])(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_MATH = re.compile(r"(?<!\\)\$\$?[^$]+\$\$?")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FOOTNOTE = re.compile(r"\[\^[^\]]+\]")


def _roles(text: str) -> list[tuple[str, str]]:
    """(role, content) of each role in ``text``: ``{ref}`x``` and ``:ref:`x``` alike."""
    return [(myst or rst, content) for myst, rst, content in _ROLE.findall(text)]


def _role_target(role: str, content: str) -> str:
    explicit = re.search(r"<([^<>]+)>\s*$", content)
    target = explicit.group(1) if explicit else content
    return target.lower() if role == "term" else target


def _role_text(content: str) -> str:
    return re.sub(r"\s*<[^<>]+>\s*$", "", content)


def glossary_terms(language: str = "zh_CN") -> dict[str, str]:
    """Each glossary term (lower case) -> its Chinese name, from the glossary itself.

    The English glossary's "中文：" lines are the single source of the
    Chinese terms: a term listed with others ("Adam, AdaGrad, Momentum,
    RMSprop") takes the name at its position in the line.
    """
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    block = text.split("```{glossary}", 1)[1].split("```", 1)[0]
    names: dict[str, str] = {}
    pending: list[str] = []
    for line in block.splitlines():
        if line and not line[0].isspace() and not line.startswith(":"):
            pending.append(line.strip())
        elif line.strip().startswith("中文："):
            chinese = line.strip().removeprefix("中文：").split("、")
            for index, term in enumerate(pending):
                names[term.lower()] = chinese[index if len(chinese) == len(pending) else 0]
            pending = []
    return names


#: Words a translation must not use for a glossary term: the other names it
#: goes by, so that one term is always one term (issue: epoch is 轮次 everywhere).
REJECTED_SYNONYMS = {"轮次": ("训练轮数", "训练周期"), "检查点": ("断点文件",), "清单文件": ("元数据文件",)}


def _core(name: str) -> str:
    """The part of a glossary name that every use must contain: 摘要（哈希值） -> 摘要."""
    return name.split("（")[0].split(" ")[0].lower()


def message_problems(original: str, translation: str, terms: dict[str, str]) -> list[str]:
    """What is wrong with one translated message; empty when nothing is."""
    problems = []
    roles = [(role, _role_target(role, content)) for role, content in _roles(original)]
    translated_roles = [(role, _role_target(role, content)) for role, content in _roles(translation)]
    if sorted(roles) != sorted(translated_roles):
        problems.append(f"roles differ: {sorted(roles)} != {sorted(translated_roles)}")
    for role, content in _roles(translation):
        target = _role_target(role, content)
        if role == "term" and target in terms and _core(terms[target]) not in _role_text(content).lower():
            problems.append(f"{{term}}`{content}` must use the glossary's name {terms[target]!r}")
    for chosen, others in REJECTED_SYNONYMS.items():
        problems += [f"{other!r} for {chosen!r}: the glossary's term is {chosen!r}"
                     for other in others if other in translation]
    for name, pattern in (("code", _CODE), ("maths", _MATH), ("links", _LINK), ("footnotes", _FOOTNOTE)):
        strip = (lambda text: _ROLE.sub("", text)) if pattern is _CODE else (lambda text: text)
        found = sorted(str(match) for match in pattern.findall(strip(original)))
        kept = sorted(str(match) for match in pattern.findall(strip(translation)))
        if found != kept:
            problems.append(f"{name} differ: {found} != {kept}")
    return problems


def catalogue_problems(path: Path, terms: dict[str, str] | None = None) -> list[str]:
    """Every problem of one catalogue: untranslated, fuzzy or inconsistent messages."""
    from babel.messages.pofile import read_po

    terms = glossary_terms() if terms is None else terms
    with path.open("rb") as handle:
        catalogue = read_po(handle)
    problems = []
    for message in catalogue:
        if not message.id:
            continue
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        where = f"{name}: {str(message.id)[:60]!r}"
        if not message.string:
            problems.append(f"{where}: untranslated")
        elif message.fuzzy:
            problems.append(f"{where}: fuzzy (the English changed; check the translation)")
        else:
            problems += [f"{where}: {problem}" for problem in message_problems(message.id, message.string, terms)]
    return problems


# --------------------------------------------------------------------------- figures

#: Read by nnsave.book.figures: the language of every label drawn without ``lang``.
FIGURE_LANGUAGE_VARIABLE = "NNSAVE_FIGURE_LANG"


def figure_stamp(english_png: str, language: str = "zh_CN") -> str:
    """What a translated figure was drawn from: the English figure and the labels.

    A change to the data or the drawing code changes the English figure (once
    its notebook is re-run); a change to a translated label changes the table.
    """
    from nnsave.book.figures import TRANSLATIONS

    labels = json.dumps(TRANSLATIONS[language], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(english_png.encode("ascii") + labels.encode("utf-8")).hexdigest()


def figure_cells(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """The notebook's cells that show a figure: cell id -> its base64 PNG."""
    found = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                found[cell.id] = png.replace("\n", "")
                break
    return found


def figures(language: str, notebooks: list[Path]) -> None:
    """Re-run each notebook with figure labels in ``language`` and keep its figures.

    Only the labels change: every notebook seeds everything, so the data are
    those of the English run. ``stamps.json`` records the English figure
    each translation was drawn beside, so that a test notices when it goes stale.
    """
    import base64

    from nbclient import NotebookClient

    folder = figure_folder(ROOT, language)
    folder.mkdir(parents=True, exist_ok=True)
    stamps_file = folder / "stamps.json"
    stamps = json.loads(stamps_file.read_text()) if stamps_file.exists() else {}
    os.environ[FIGURE_LANGUAGE_VARIABLE] = language
    failed = False
    for path in notebooks:
        english = nbformat.read(path, as_version=4)
        wanted = figure_cells(english)
        if not wanted:
            continue
        translated = nbformat.read(path, as_version=4)
        NotebookClient(translated, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}},
                       extra_arguments=["--IPKernelApp.capture_fd_output=False"]).execute()
        missing = sorted({line for cell in translated.cells for output in cell.get("outputs", [])
                          if output.get("name") == "stderr"
                          for line in output.get("text", "").splitlines()
                          if "label for" in line or "missing from font" in line})
        if missing:
            print(f"{path.name}: labels without a translation or glyphs without a font "
                  "(install a CJK font, e.g. fonts-noto-cjk, then delete matplotlib's font cache); "
                  "figures left as they were:",
                  *missing, sep="\n  ")
            failed = True
            continue
        drawn = figure_cells(translated)
        page = folder / path.stem
        shutil.rmtree(page, ignore_errors=True)
        page.mkdir(parents=True)
        for cell_id, png in drawn.items():
            (page / f"{cell_id}.png").write_bytes(base64.b64decode(png))
            stamps[f"{path.stem}/{cell_id}"] = figure_stamp(wanted[cell_id], language)
        stamps = {key: value for key, value in stamps.items()
                  if not key.startswith(f"{path.stem}/") or key.split("/", 1)[1] in drawn}
        print(f"{path.name}: {len(drawn)} figure(s)")
    stamps_file.write_text(json.dumps(dict(sorted(stamps.items())), indent=1) + "\n")
    if failed:
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(ROOT / "book" / "_tools"))
    from book_files import toc_notebooks

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build").add_argument("language", choices=sorted(EDITIONS))
    commands.add_parser("update")
    drawing = commands.add_parser("figures")
    drawing.add_argument("notebooks", nargs="*", type=Path)
    commands.add_parser("check").add_argument("catalogues", nargs="*", type=Path)
    arguments = parser.parse_args(argv)
    if arguments.command == "build":
        build(arguments.language)
    elif arguments.command == "check":
        paths = [path.resolve() for path in arguments.catalogues] or sorted(LOCALE.glob("*/LC_MESSAGES/**/*.po"))
        problems = [problem for path in paths for problem in catalogue_problems(path)]
        print("\n".join(problems) or f"{len(paths)} catalogue(s): every message translated")
        sys.exit(1 if problems else 0)
    elif arguments.command == "update":
        update(sorted(EDITIONS))
    else:
        for language in sorted(EDITIONS):
            figures(language, [path.resolve() for path in arguments.notebooks] or toc_notebooks())


if __name__ == "__main__":
    main()

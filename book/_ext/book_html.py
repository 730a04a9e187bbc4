"""Small corrections to the HTML that Jupyter Book 1 produces.

Launch buttons: Binder and Colab links are built from ``repository.url`` in
_config.yml, and sphinx-book-theme crashes if the services are configured
while that URL is empty. Until the book has a public home they are switched
off here, so setting that one URL is all it takes to show them.

Two upstream glitches log errors in the browser console on every page:

* sphinx-thebe adds its inline configuration (``const THEBE_JS_URL = ...``)
  after the HTML builder has started, and Sphinx 7 then emits it twice, once
  naming "no file" as ``None`` and once as ``""``. The second copy redeclares
  a ``const``, which the browser reports as a SyntaxError.
* On a reader's first visit (empty localStorage) sphinx-book-theme sets the
  colour mode to ``""``, and pydata-sphinx-theme reports it as invalid before
  falling back to ``auto``.

This extension keeps one copy of each script and starts the mode at ``auto``.

Editions: the English book sits at the site's root and each translation in a
folder named after its language (``zh_CN/``, built by book/_tools/editions.py).
Every page links to the same page in the other editions. A translated edition
shows its own drawing of each figure whose labels carry meaning: the code
cell's PNG output is swapped for ``locale/<language>/figures/<page>/<cell id>.png``
when that file exists.
"""

from __future__ import annotations

import html
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

_DEFAULT_MODE = (
    "document.documentElement.dataset.mode = "
    "document.documentElement.dataset.mode || localStorage.getItem('mode') || 'auto';"
)


def _drop_repeated_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", script.attributes.get("body"))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def _launch_buttons_need_a_repository(app, config):
    options = config.html_theme_options
    if not options.get("repository_url"):
        launch = dict(options.get("launch_buttons", {}))
        launch.update(binderhub_url="", colab_url="")
        options["launch_buttons"] = launch


#: The book's editions: language code -> the name a reader looks for.
EDITIONS = {"en": "English", "zh_CN": "简体中文"}
_HREFLANG = {"en": "en", "zh_CN": "zh-Hans"}


def _language(config) -> str:
    return config.language or "en"


def _edition_root(language: str) -> str:
    """Where an edition sits, relative to the site's root."""
    return "" if language == "en" else f"{language}/"


def edition_links(pagename: str, language: str) -> list[tuple[str, str, str]]:
    """(language, name, relative URL) of ``pagename`` in every other edition."""
    up = "../" * (pagename.count("/") + (0 if language == "en" else 1))
    return [(other, name, f"{up}{_edition_root(other)}{pagename}.html")
            for other, name in EDITIONS.items() if other != language]


def _link_editions(app, pagename, templatename, context, doctree):
    if doctree is None:
        return
    links = edition_links(pagename, _language(app.config))
    anchors = " · ".join(
        f'<a class="nnsave-edition" href="{html.escape(url)}" hreflang="{_HREFLANG[language]}" '
        f'lang="{_HREFLANG[language]}">{html.escape(name)}</a>'
        for language, name, url in links
    )
    context["body"] = f'<p class="nnsave-editions">{anchors}</p>\n' + context.get("body", "")
    context["metatags"] = context.get("metatags", "") + "".join(
        f'\n<link rel="alternate" hreflang="{_HREFLANG[language]}" href="{html.escape(url)}" />'
        for language, _, url in links
    )


def translated_figure(srcdir: Path, language: str, docname: str, cell_id: str) -> Path | None:
    """The translated drawing of a notebook cell's figure, if there is one."""
    if language == "en":
        return None
    candidate = srcdir / "locale" / language / "figures" / Path(docname).name / f"{cell_id}.png"
    return candidate if candidate.is_file() else None


class TranslatedFigures(SphinxTransform):
    """Show a translated edition's own drawing of each figure that has one."""

    default_priority = 900

    def apply(self, **kwargs) -> None:
        language = _language(self.config)
        source = Path(self.env.doc2path(self.env.docname))
        if language == "en" or source.suffix != ".ipynb":
            return
        import nbformat

        cells = nbformat.read(source, as_version=4).cells
        srcdir = Path(self.env.srcdir)
        for cell in self.document.findall(nodes.container):
            if cell.get("nb_element") != "cell_code" or "cell_index" not in cell:
                continue
            drawing = translated_figure(srcdir, language, self.env.docname, cells[cell["cell_index"]].id)
            if drawing is None:
                continue
            for image in cell.findall(nodes.image):
                image["uri"] = "/" + drawing.relative_to(srcdir).as_posix()
                image.pop("candidates", None)


def setup(app):
    app.add_transform(TranslatedFigures)
    app.connect("html-page-context", _link_editions)
    app.connect("config-inited", _launch_buttons_need_a_repository)
    app.add_js_file(None, body=_DEFAULT_MODE, priority=100)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

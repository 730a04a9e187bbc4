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
import struct
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform

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


def figure_folder(root: Path, language: str) -> Path:
    """Where a translated edition keeps its figures: <page>/<cell id>.png, and stamps.json."""
    return root / "locale" / language / "figures"


def translated_figure(srcdir: Path, language: str, docname: str, cell_id: str) -> Path | None:
    """The translated drawing of a notebook cell's figure, if there is one."""
    if language == "en":
        return None
    candidate = figure_folder(srcdir, language) / Path(docname).name / f"{cell_id}.png"
    return candidate if candidate.is_file() else None


def _swap_translated_figures(app, doctree) -> None:
    """Show a translated edition's own drawing of each figure that has one.

    Runs on ``doctree-read`` before Sphinx's image collector (priority 500), so
    the collector copies the translated drawing as it would any image.
    """
    language = _language(app.config)
    source = Path(app.env.doc2path(app.env.docname))
    if language == "en" or source.suffix != ".ipynb":
        return
    import nbformat

    cells = nbformat.read(source, as_version=4).cells
    srcdir = Path(app.env.srcdir)
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code" or "cell_index" not in cell:
            continue
        drawing = translated_figure(srcdir, language, app.env.docname, cells[cell["cell_index"]].id)
        if drawing is not None:
            # Figures are "retina" PNGs shown at half their pixel size; the
            # translated one may be a little wider or taller than the English.
            width, height = struct.unpack(">II", drawing.read_bytes()[16:24])
            for image in cell.findall(nodes.image):
                image["uri"] = "/" + drawing.relative_to(srcdir).as_posix()
                if "width" in image:
                    image["width"], image["height"] = f"{width // 2}px", f"{height // 2}px"


class TranslatableExerciseTitles(SphinxTransform):
    """Let gettext see each exercise's title ("Which checkpoints are left?").

    sphinx-exercise builds the title node itself, without the source that
    Sphinx's i18n uses to recognise text it may translate, so the titles never
    reached a catalogue. Giving them their directive's source and line, before
    the i18n transform runs (priority 20), makes them ordinary messages.
    """

    default_priority = 10

    def apply(self, **kwargs) -> None:
        from sphinx_exercise.nodes import exercise_subtitle

        for subtitle in self.document.findall(exercise_subtitle):
            if subtitle.source is None:
                owner = subtitle.parent.parent
                subtitle.source = owner.source or self.document["source"]
                subtitle.line = owner.line
                subtitle.rawsource = subtitle.astext()


class ExerciseTitleMessages(SphinxPostTransform):
    """Hand the exercise titles to the gettext builder.

    sphinx-exercise's own post-transform (priority 20) folds each subtitle
    into a new, sourceless title before the builder reads the messages; this
    one (priority 30) marks the folded text as the same message again.
    """

    default_priority = 30
    builders = ("gettext",)

    def run(self, **kwargs) -> None:
        for admonition in self.document.findall(nodes.Admonition):
            title = admonition.children[0] if admonition.children else None
            text = title.astext() if isinstance(title, nodes.title) else ""
            if "exercise" in admonition.get("classes", []) and text.startswith(" (") and text.endswith(")"):
                title.source, title.line = admonition.source, admonition.line
                title.rawsource = text[2:-1]
                title.uid = ""  # the catalogue skips nodes without one (replicated nodes)


def _solutions_see_translated_exercises(app, doctree) -> None:
    """Point sphinx-exercise's registry at each exercise as translated.

    A solution's title repeats its exercise's ("Solution to Exercise 8.1 (...)")
    from the node the registry kept when the directive ran, before the i18n
    transform translated the page; without this a translated edition would
    show the English title there.
    """
    from sphinx_exercise.nodes import exercise_enumerable_node, exercise_node

    registry = getattr(app.env, "sphinx_exercise_registry", {})
    for node in doctree.findall(lambda n: isinstance(n, (exercise_node, exercise_enumerable_node))):
        kept = registry.get(node.get("label"), {}).get("node")
        if kept is None or kept is node:
            continue
        title, kept_title = node.children[0], kept.children[0]
        if len(title.children) > 1 and len(kept_title.children) > 1:
            subtitle = kept_title.children[1]
            subtitle.children = []
            subtitle.extend(child.deepcopy() for child in title.children[1].children)


class TranslatedTocCaptions(SphinxTransform):
    """Translate the parts' captions ("Part I: How a network works").

    sphinx-external-toc inserts the toctrees from _toc.yml at priority 100,
    after Sphinx's i18n transform (20) has translated the page, so their
    captions would stay English; the gettext builder does extract them.
    """

    default_priority = 110

    def apply(self, **kwargs) -> None:
        if _language(self.config) == "en":
            return
        from sphinx.locale import init as init_locale
        from sphinx.util.i18n import docname_to_domain

        folders = [str(Path(self.env.srcdir) / folder) for folder in self.config.locale_dirs]
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        catalogue, _ = init_locale(folders, self.config.language, domain)
        for toctree in self.document.findall(addnodes.toctree):
            if toctree.get("caption"):
                toctree["caption"] = toctree["rawcaption"] = catalogue.gettext(toctree["caption"])


class GlossaryInEnglishOrder(SphinxTransform):
    """Keep a translated glossary in the English terms' order.

    Sphinx sorts a ``:sorted:`` glossary after translating it (priority 500),
    which orders Chinese terms by code point, an order no reader knows. Each
    translated term shows its English name, so the English order is the one
    a reader can follow; the term's id still holds that name.
    """

    default_priority = 510

    def apply(self, **kwargs) -> None:
        if _language(self.config) == "en":
            return
        for glossary in self.document.findall(addnodes.glossary):
            if glossary["sorted"]:
                entries = glossary[0]
                entries[:] = sorted(entries, key=lambda item: item[0]["ids"][0].lower())


def setup(app):
    app.add_transform(GlossaryInEnglishOrder)
    app.add_transform(TranslatableExerciseTitles)
    app.add_transform(TranslatedTocCaptions)
    app.connect("doctree-read", _solutions_see_translated_exercises)
    app.add_post_transform(ExerciseTitleMessages)
    app.connect("doctree-read", _swap_translated_figures, priority=400)
    app.connect("html-page-context", _link_editions)
    app.connect("config-inited", _launch_buttons_need_a_repository)
    app.add_js_file(None, body=_DEFAULT_MODE, priority=100)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

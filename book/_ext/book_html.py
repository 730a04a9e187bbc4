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
"""

from __future__ import annotations

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


def setup(app):
    app.connect("config-inited", _launch_buttons_need_a_repository)
    app.add_js_file(None, body=_DEFAULT_MODE, priority=100)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

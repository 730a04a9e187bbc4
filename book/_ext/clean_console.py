"""Keep the browser console of every page free of errors.

Two upstream glitches log errors on every page of a Jupyter Book 1 site:

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


def setup(app):
    app.add_js_file(None, body=_DEFAULT_MODE, priority=100)
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

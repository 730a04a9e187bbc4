"""The book's larger figures, one function per figure.

Each function takes ``lang`` so that the Chinese edition can relabel the same
figure; every label passes through :func:`_label`. Importing this module makes
notebooks show figures as 2x ("retina") PNGs, sharp on high-density screens.
"""

from __future__ import annotations

import matplotlib

__all__: list[str] = []

#: Labels in languages other than English, keyed by the English text.
TRANSLATIONS: dict[str, dict[str, str]] = {"zh_CN": {}}


def _label(text: str, lang: str = "en") -> str:
    """``text`` in ``lang``; English when no translation is known."""
    if lang == "en":
        return text
    return TRANSLATIONS.get(lang, {}).get(text, text)


def _sharp_inline_figures() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    if get_ipython() is None:  # a plain Python process: nothing to configure
        return
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("retina")


_sharp_inline_figures()
matplotlib.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight"})


# --- structure ---------------------------------------------------------------



# --- training ----------------------------------------------------------------



# --- math --------------------------------------------------------------------



# --- overfitting -------------------------------------------------------------



# --- saving (Part II) ---------------------------------------------------------



# --- choosing a format ---------------------------------------------------------



# --- performance -------------------------------------------------------------


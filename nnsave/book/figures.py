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


def optimizer_losses(histories: dict, lang: str = "en"):
    """Training loss per epoch, one line per optimizer; the legend sits beside the axes.

    ``histories`` maps an optimizer's name to the ``history`` dict of its ``fit``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, history in histories.items():
        epochs = range(1, len(history["loss"]) + 1)
        ax.plot(epochs, history["loss"], marker="o", markersize=4, clip_on=False, label=name)
    ax.set_xlabel(_label("epoch", lang))
    ax.set_ylabel(_label("training loss (cross-entropy)", lang))
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Outside the axes, the legend cannot hide a curve, whichever way the race goes.
    ax.legend(title=_label("optimizer", lang), loc="upper left", bbox_to_anchor=(1.02, 1))
    return fig


def early_stopping(history: dict, best_epoch: int, lang: str = "en"):
    """Training and validation loss per epoch, with the best epoch marked."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = range(1, len(history["loss"]) + 1)
    for key, text in (("loss", "training loss"), ("val_loss", "validation loss")):
        ax.plot(epochs, history[key], marker="o", markersize=3, clip_on=False,
                label=_label(text, lang))
    best = _label("best epoch", lang)
    ax.axvline(best_epoch, color="grey", linestyle="--", label=f"{best} ({best_epoch})")
    ax.set_xlabel(_label("epoch", lang))
    ax.set_ylabel(_label("cross-entropy", lang))
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return fig


# --- math --------------------------------------------------------------------



# --- overfitting -------------------------------------------------------------



# --- saving (Part II) ---------------------------------------------------------



# --- choosing a format ---------------------------------------------------------



# --- performance -------------------------------------------------------------


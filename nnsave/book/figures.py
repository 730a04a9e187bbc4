"""The book's larger figures, one function per figure.

Each function takes ``lang`` so that the Chinese edition can relabel the same
figure; every label passes through :func:`_label`. Without ``lang``, the
language is ``NNSAVE_FIGURE_LANG`` (English when unset): that is how
book/_tools/editions.py draws the Chinese figures from the unchanged notebooks. Importing this module makes
notebooks show figures as 2x ("retina") PNGs, sharp on high-density screens.
"""

from __future__ import annotations

import os
import warnings

import matplotlib

__all__: list[str] = []

#: Labels in languages other than English, keyed by the English text; each
#: figure's labels follow its function.
TRANSLATIONS: dict[str, dict[str, str]] = {"zh_CN": {}}

#: Fonts that hold the Chinese labels' glyphs; matplotlib falls back to them
#: character by character, after the usual Latin font.
_CJK_FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "SimHei",
              "Microsoft YaHei", "PingFang SC"]


def _use_cjk_font() -> None:
    """Draw every label in the first CJK font installed (they have Latin letters too).

    It goes first in ``font.sans-serif``, which matplotlib resolves when it
    draws, so text made before the first translated label is covered too.
    mathtext lays out a label with maths ("加权和 $z$") in that font as well.
    """
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    cjk = next((name for name in _CJK_FONTS if name in installed), None)
    if cjk is not None and matplotlib.rcParams["font.sans-serif"][0] != cjk:
        matplotlib.rcParams["font.sans-serif"] = [cjk, *matplotlib.rcParams["font.sans-serif"]]
        matplotlib.rcParams.update({"mathtext.fontset": "custom", "mathtext.rm": cjk,
                                    "mathtext.it": f"{cjk}:italic", "mathtext.bf": f"{cjk}:bold",
                                    "mathtext.sf": cjk, "mathtext.cal": cjk})


def _language(lang: str | None) -> str:
    """``lang``, or else the language of the edition being drawn (English by default)."""
    return lang or os.environ.get("NNSAVE_FIGURE_LANG", "en")


def _label(text: str, lang: str | None = None) -> str:
    """``text`` in ``lang``; English, with a warning, when no translation is known."""
    lang = _language(lang)
    if lang == "en":
        return text
    _use_cjk_font()
    translated = TRANSLATIONS.get(lang, {}).get(text)
    if translated is None:
        warnings.warn(f"no {lang} label for {text!r}: add it to TRANSLATIONS in nnsave/book/figures.py",
                      stacklevel=2)
        return text
    return translated


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


def activation_curves(z, curves, lang=None):
    """Activation functions against the weighted sum ``z``.

    ``curves`` maps each legend label to the values of one function at ``z``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, values in curves.items():
        ax.plot(z, values, label=name, lw=2)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlabel(_label("weighted sum $z$", lang))
    ax.set_ylabel(_label("activation $f(z)$", lang))
    ax.legend(loc="upper left")  # where every curve is low
    ax.grid(alpha=0.3)
    return fig


def _layer_title(index, sizes, activations, lang):
    """The three-line caption under one column of :func:`network_diagram`."""
    n = sizes[index]
    if index == 0:
        return "\n".join([_label("input layer", lang),
                          _label("{n} features", lang).format(n=n),
                          _label("no parameters", lang)])
    kind = "output layer" if index == len(sizes) - 1 else "hidden layer"
    n_in = sizes[index - 1]
    count = _label("{n_in}·{n} + {n} = {total} parameters", lang)
    return "\n".join([_label(kind, lang),
                      _label("{n} {activation} neurons", lang).format(
                          n=n, activation=activations[index - 1]),
                      count.format(n_in=n_in, n=n, total=n_in * n + n)])


def _draw_neurons(ax, columns, radius):
    """One circle per neuron, coloured by its layer and named x, h or y-hat."""
    from matplotlib.patches import Circle

    inner = len(columns) - 2
    symbols = ["x"] + ["h"] * inner + [r"\hat{y}"]
    colours = ["#cfe2f3"] + ["#d9ead3"] * inner + ["#fce5cd"]
    for i, column in enumerate(columns):
        for j, centre in enumerate(column):
            ax.add_patch(Circle(centre, radius, facecolor=colours[i],
                                edgecolor="black", zorder=2))
            ax.text(*centre, f"${symbols[i]}_{j + 1}$", ha="center", va="center",
                    fontsize=12, zorder=3)


def network_diagram(sizes, activations, lang=None):
    """A fully connected network: a column of circles per layer, a line per weight.

    ``activations`` names the activation of each layer after the input layer.
    The weights that feed the first hidden neuron, ``h_1``, are drawn in red.
    """
    import matplotlib.pyplot as plt

    gap_x, radius = 3.5, 0.3
    columns = [[(i * gap_x, (n - 1) / 2 - j) for j in range(n)]
               for i, n in enumerate(sizes)]
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    for i in range(1, len(sizes)):
        for (x0, y0) in columns[i - 1]:
            for j, (x1, y1) in enumerate(columns[i]):
                into_h1 = (i, j) == (1, 0)
                ax.plot([x0, x1], [y0, y1], zorder=1, lw=2.2 if into_h1 else 0.9,
                        color="tab:red" if into_h1 else "0.65")
    _draw_neurons(ax, columns, radius)
    bottom = -(max(sizes) - 1) / 2 - radius
    for i in range(len(sizes)):
        ax.text(i * gap_x, bottom - 0.35, _layer_title(i, sizes, activations, lang),
                ha="center", va="top", fontsize=10)
    (x1, y1), (h1_x, h1_y) = columns[0][0], columns[1][0]
    ax.annotate(_label(r"weights into $h_1$ (column 1 of $W^{(1)}$)", lang),
                xy=((x1 + h1_x) / 2, (y1 + h1_y) / 2 + 0.05), xytext=(x1 - 0.6, 2.6),
                color="tab:red", fontsize=10,
                arrowprops=dict(arrowstyle="->", color="tab:red"))
    ax.annotate(_label(r"$h_1$ adds its bias $b^{(1)}_1$", lang),
                xy=(h1_x + 0.25, h1_y + 0.2), xytext=(h1_x + 1.6, 1.9), fontsize=10,
                arrowprops=dict(arrowstyle="->", color="black"))
    ax.set_xlim(-0.8, (len(sizes) - 1) * gap_x + 0.8)
    ax.set_ylim(bottom - 1.7, 2.9)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


TRANSLATIONS["zh_CN"].update({
    "weighted sum $z$": "加权和 $z$",
    "activation $f(z)$": "激活值 $f(z)$",
    "input layer": "输入层",
    "hidden layer": "隐藏层",
    "output layer": "输出层",
    "{n} features": "{n} 个特征",
    "no parameters": "没有参数",
    "{n} {activation} neurons": "{n} 个 {activation} 神经元",
    "{n_in}·{n} + {n} = {total} parameters": "{n_in}·{n} + {n} = {total} 个参数",
    r"weights into $h_1$ (column 1 of $W^{(1)}$)": r"输入 $h_1$ 的权重（$W^{(1)}$ 的第 1 列）",
    r"$h_1$ adds its bias $b^{(1)}_1$": r"$h_1$ 加上它的偏置 $b^{(1)}_1$",
})


# --- training ----------------------------------------------------------------


def optimizer_losses(histories: dict, lang: str | None = None):
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


def early_stopping(history: dict, best_epoch: int, lang: str | None = None):
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


def gradient_descent_steps(losses, lang=None):
    """The loss after each full-batch gradient-descent step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses)
    ax.set_xlabel(_label("gradient descent step", lang))
    ax.set_ylabel(_label("binary cross-entropy", lang))
    ax.set_title(_label("Full-batch gradient descent on the moons, learning rate 0.5", lang))
    return fig


TRANSLATIONS["zh_CN"].update({
    "training loss (cross-entropy)": "训练损失（交叉熵）",
    "optimizer": "优化器",
    "best epoch": "最佳轮次",
    "gradient descent step": "梯度下降步数",
    "binary cross-entropy": "二元交叉熵",
    "Full-batch gradient descent on the moons, learning rate 0.5": "在 moons 数据上做全批量梯度下降，学习率 0.5",
})


# --- math --------------------------------------------------------------------


def gradient_descent_gap(gaps, floor, lang=None):
    """The largest gap between the weights and their exact values, epoch by epoch.

    ``floor`` is drawn as a dashed line: the float32 resolution the gaps end at.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = np.arange(1, len(gaps) + 1)
    ax.semilogy(epochs, gaps, label=_label("Keras Dense(1), gradient descent", lang))
    ax.axhline(floor, color="gray", linestyle="--",
               label=_label("float32 spacing near 2.0", lang))
    ax.set_xlabel(_label("epoch (one full-batch gradient step)", lang))
    ax.set_ylabel(r"max $|\theta_t - \hat\theta|$")
    ax.legend(loc="upper right")  # the curve has reached the floor by then
    return fig


def logistic_boundary(X, y, probability, lang=None):
    """Two classes of points over the shaded probability of class 1.

    ``probability`` maps an ``(n, 2)`` array of points to P(class 1); the black
    line is where it equals one half.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.lines import Line2D

    low, high = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5  # shade around every point
    grid_x, grid_y = np.meshgrid(np.linspace(low[0], high[0], 200),
                                 np.linspace(low[1], high[1], 200))
    grid_p = probability(np.column_stack([grid_x.ravel(), grid_y.ravel()]))
    grid_p = grid_p.reshape(grid_x.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    shade = ax.contourf(grid_x, grid_y, grid_p, levels=np.linspace(0, 1, 11),
                        cmap="RdBu_r", alpha=0.6)
    fig.colorbar(shade, ax=ax, label=_label("probability of class 1", lang))
    ax.contour(grid_x, grid_y, grid_p, levels=[0.5], colors="black")
    handles = [Line2D([], [], color="black", label=_label("probability 0.5", lang))]
    for label, colour in [(0, "tab:blue"), (1, "tab:red")]:
        handles.append(ax.scatter(*X[y == label].T, s=14, c=colour, edgecolors="k",
                                  linewidths=0.3,
                                  label=_label("class {k}", lang).format(k=label)))
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13),
              ncol=3, fontsize=9)
    return fig


def softmax_digit(image, true_label, by_hand, by_library, lang=None):
    """One digit image beside its ten class probabilities.

    The bars are ``by_hand``; short black marks show ``by_library`` on top of them.
    """
    import matplotlib.pyplot as plt

    fig, (ax_image, ax_bars) = plt.subplots(
        1, 2, figsize=(7, 3), gridspec_kw={"width_ratios": [1, 2]})
    ax_image.imshow(image.reshape(8, 8), cmap="gray_r")
    ax_image.set_title(_label("true label: {k}", lang).format(k=true_label))
    ax_image.axis("off")
    digits = range(len(by_hand))
    ax_bars.bar(digits, by_hand, color="tab:blue",
                label=_label("formula (numpy)", lang))
    ax_bars.plot(digits, by_library, "k_", markersize=18, clip_on=False,
                 label="predict_proba")
    ax_bars.set_xticks(digits)
    ax_bars.set_xlabel(_label("digit $k$", lang))
    ax_bars.set_ylabel(r"$P(y = k \mid \mathbf{x})$")
    ax_bars.set_ylim(0, 1)
    ax_bars.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=9)
    return fig


def probability_along_line(t, curves, points_t, labels, lang=None):
    """Each model's P(y = 1) along a line through the data, with the labelled points.

    ``curves`` maps each legend label to the probabilities at the positions ``t``;
    the points sit at ``points_t`` with heights 0 or 1 given by ``labels``.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    for name, probabilities in curves.items():
        ax.plot(t, probabilities, label=name)
    ax.scatter(points_t, labels, c=labels, cmap="coolwarm", edgecolors="k", s=60,
               zorder=3, clip_on=False, label=_label("the four labels", lang))
    ax.axhline(0.5, color="gray", linewidth=0.8, linestyle=":")
    ax.set_xlabel(_label("$x_1$ along the line $x_2 = x_1 + 1$", lang))
    ax.set_ylabel("$P(y = 1)$")
    ax.set_ylim(-0.08, 1.08)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2)
    return fig


TRANSLATIONS["zh_CN"].update({
    "Keras Dense(1), gradient descent": "Keras Dense(1)，梯度下降",
    "float32 spacing near 2.0": "2.0 附近的 float32 间距",
    "epoch (one full-batch gradient step)": "轮次（一次全批量梯度下降步）",
    "probability of class 1": "类别 1 的概率",
    "probability 0.5": "概率 0.5",
    "class {k}": "类别 {k}",
    "true label: {k}": "真实标签：{k}",
    "formula (numpy)": "公式（numpy）",
    "digit $k$": "数字 $k$",
    "the four labels": "四个标签",
    "$x_1$ along the line $x_2 = x_1 + 1$": "沿直线 $x_2 = x_1 + 1$ 的 $x_1$",
})


# --- overfitting -------------------------------------------------------------


def overfitting_curves(history, best_epoch, lang=None):
    """Training and validation cross-entropy and accuracy, epoch by epoch.

    ``history`` is a Keras ``History.history`` dictionary with the keys ``ce``,
    ``val_ce``, ``accuracy`` and ``val_accuracy``; a dashed line marks ``best_epoch``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    epochs = np.arange(1, len(history["ce"]) + 1)
    fig, (ax_loss, ax_accuracy) = plt.subplots(1, 2, figsize=(7.4, 3.4))
    panels = [(ax_loss, "ce", "cross-entropy", (0, 1.5)),
              (ax_accuracy, "accuracy", "accuracy", (0.5, 1.02))]
    for ax, key, quantity, limits in panels:
        ax.plot(epochs, history[key], label=_label("training", lang))
        ax.plot(epochs, history["val_" + key], label=_label("validation", lang))
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1,
                   label=_label("lowest validation loss", lang))
        ax.set_ylim(*limits)
        ax.set_xlabel(_label("epoch", lang))
        ax.set_ylabel(_label(quantity, lang))
    # One legend for both panels, above them, where it cannot cover a curve.
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="upper center", ncol=3,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def remedy_curves(histories, baseline_val_ce, lang=None):
    """One small panel per remedy: its training and validation cross-entropy.

    ``histories`` maps each remedy's name to its Keras history dictionary;
    ``baseline_val_ce`` is drawn dashed in every panel for comparison.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 3, figsize=(7.4, 5.2), sharex=True, sharey=True)
    baseline_epochs = np.arange(1, len(baseline_val_ce) + 1)
    for ax, (name, history) in zip(axes.flat, histories.items()):
        epochs = np.arange(1, len(history["ce"]) + 1)
        ax.plot(baseline_epochs, baseline_val_ce, color="grey", linestyle="--",
                linewidth=1, label=_label("baseline, validation", lang))
        ax.plot(epochs, history["ce"], label=_label("training", lang))
        ax.plot(epochs, history["val_ce"], label=_label("validation", lang))
        ax.set_title(_label(name, lang), fontsize=10)
        ax.set_ylim(0, 1.2)
    for ax in axes[1]:
        ax.set_xlabel(_label("epoch", lang))
    for ax in axes[:, 0]:
        ax.set_ylabel(_label("cross-entropy", lang))
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="upper center", ncol=3,
               frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


TRANSLATIONS["zh_CN"].update({
    "training": "训练集",
    "validation": "验证集",
    "lowest validation loss": "验证损失最低处",
    "epoch": "轮次",
    "cross-entropy": "交叉熵",
    "accuracy": "准确率",
    "baseline, validation": "基线，验证集",
    "more data": "更多数据",
    "smaller model": "更小的模型",
    "L2 (λ = 0.003)": "L2（λ = 0.003）",
    "L1 (λ = 0.0003)": "L1（λ = 0.0003）",
    "dropout (p = 0.5)": "dropout（p = 0.5）",
    "early stopping": "提前停止",
})


# --- saving (Part II) ---------------------------------------------------------


def weights_as_images(pixels, png_error, jpg_error, lang=None):
    """A weight matrix stored as an 8-bit grey image, and each weight's error after
    a PNG and a JPEG round trip.

    All three arrays have the kernel's shape (inputs × neurons) and are drawn
    transposed, one row per neuron. The two error maps share one colour scale,
    so that their sizes can be compared at a glance.
    """
    import matplotlib.pyplot as plt

    largest_error = max(float(png_error.max()), float(jpg_error.max()))
    panels = [(pixels, "gray", None, "the kernel as an 8-bit PNG (grey levels 0-255)"),
              (png_error, "viridis", largest_error, "|error| after PNG"),
              (jpg_error, "viridis", largest_error, "|error| after JPEG")]
    fig, axes = plt.subplots(3, 1, figsize=(7, 6.4), sharex=True,
                             constrained_layout=True)
    for ax, (image, colours, top, title) in zip(axes, panels):
        shown = ax.imshow(image.T, cmap=colours, vmin=0 if top else None, vmax=top,
                          aspect="auto")
        ax.set_title(_label(title, lang), fontsize=10)
        ax.set_ylabel(_label("hidden neuron", lang))
        fig.colorbar(shown, ax=ax, pad=0.02)
    axes[-1].set_xlabel(_label("input pixel", lang))
    return fig


# quick start, saving Keras, scikit-learn


def keras_archive(sizes, lang=None):
    """What ``model.save`` writes to a ``.keras`` file, and the manifest nnsave adds.

    ``sizes`` maps each member of the archive (``metadata.json``,
    ``config.json``, ``model.weights.h5``) to its size as printed text.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(7.4, 3.6))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 5)
    ax.axis("off")

    def box(x, y, width, height, title, lines, colour):
        ax.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.05",
                                    facecolor=colour, edgecolor="black", linewidth=1))
        ax.text(x + 0.15, y + height - 0.15, title, fontsize=9.5, fontweight="bold",
                va="top")
        ax.text(x + 0.15, y + height - 0.6, "\n".join(_label(line, lang) for line in lines),
                fontsize=9, va="top", linespacing=1.4)

    box(0.1, 0.1, 6.3, 4.75, _label("digits.keras: a zip archive", lang), [], "#f2f2f2")
    box(0.35, 3.45, 5.8, 0.85, f"metadata.json ({sizes['metadata.json']})",
        ["Keras version, date saved"], "#fff2cc")
    box(0.35, 2.05, 5.8, 1.2, f"config.json ({sizes['config.json']})",
        ["architecture: layers, units, activations",
         "compile settings: optimizer, loss, metrics"], "#dae8fc")
    box(0.35, 0.3, 5.8, 1.55, f"model.weights.h5 ({sizes['model.weights.h5']}, HDF5)",
        ["layers/...: kernels and biases",
         "optimizer/...: step counter, learning rate,",
         "    Adam's two averages per weight"], "#d5e8d4")
    box(7.2, 1.2, 3.7, 2.55, "digits.keras.nnsave.json",
        ["written by nnsave:", "digest and size", "library versions",
         "class, your metadata", "signature (your key)"], "#f8cecc")
    ax.annotate("", xy=(6.5, 2.45), xytext=(7.15, 2.45),
                arrowprops={"arrowstyle": "->", "linewidth": 1.5})
    ax.text(6.82, 2.62, _label("checks", lang), fontsize=9, ha="center")
    return fig


def compression_tradeoff(results, methods, levels, lang=None):
    """File size against CPU time to write and to read, one line per joblib method.

    ``results[method, level]`` holds ``size`` in bytes and ``save`` and ``load``
    times in seconds; level 0 (no compression) is drawn once, as a black square.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.6), sharey=True)
    panels = [(axes[0], "save", "CPU time to write (ms)"),
              (axes[1], "load", "CPU time to read (ms)")]
    for ax, key, axis_label in panels:
        plain = results[methods[0], 0]
        ax.plot(1000 * plain[key], plain["size"] / 1024, "ks", clip_on=False,
                label=_label("level 0 (none)", lang))
        for method in methods:
            times = [1000 * results[method, level][key] for level in levels[1:]]
            sizes = [results[method, level]["size"] / 1024 for level in levels[1:]]
            ax.plot(times, sizes, "o-", alpha=0.8, clip_on=False, label=method)
            if method in ("zlib", "bz2", "lzma"):  # gzip and xz lie on top of these
                for level, x, y in zip(levels[1:], times, sizes):
                    ax.annotate(str(level), (x, y), textcoords="offset points",
                                xytext=(4, 3), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.15, y=0.1)  # room for the markers at the ends
        ax.set_xlabel(_label(axis_label, lang))
    axes[0].set_yscale("log")
    axes[0].yaxis.set_major_formatter(ScalarFormatter())
    axes[0].yaxis.set_minor_formatter(NullFormatter())
    axes[0].set_yticks([100, 200, 500, 1000])
    axes[0].set_ylabel(_label("file size (KB)", lang))
    # Above the panels, the legend cannot cover a marker.
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=6,
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


TRANSLATIONS["zh_CN"].update({
    "the kernel as an 8-bit PNG (grey levels 0-255)": "以 8 位 PNG 保存的权重矩阵（灰度 0-255）",
    "|error| after PNG": "经 PNG 往返后的 |误差|",
    "|error| after JPEG": "经 JPEG 往返后的 |误差|",
    "hidden neuron": "隐藏层神经元",
    "input pixel": "输入像素",
    "digits.keras: a zip archive": "digits.keras：一个 zip 压缩包",
    "Keras version, date saved": "Keras 版本、保存日期",
    "architecture: layers, units, activations": "模型结构：层、单元数、激活函数",
    "compile settings: optimizer, loss, metrics": "编译设置：优化器、损失、指标",
    "layers/...: kernels and biases": "layers/...：权重矩阵和偏置",
    "optimizer/...: step counter, learning rate,": "optimizer/...：步数计数器、学习率、",
    "    Adam's two averages per weight": "    Adam 为每个权重保存的两个平均值",
    "written by nnsave:": "由 nnsave 写入：",
    "digest and size": "摘要和大小",
    "library versions": "库的版本",
    "class, your metadata": "类名、你的元数据",
    "signature (your key)": "签名（你的密钥）",
    "checks": "校验",
    "level 0 (none)": "级别 0（不压缩）",
    "CPU time to write (ms)": "写入的 CPU 时间（毫秒）",
    "CPU time to read (ms)": "读取的 CPU 时间（毫秒）",
    "file size (KB)": "文件大小（KB）",
})


# --- choosing a format ---------------------------------------------------------

#: The flowchart's boxes: name -> (x, y, text, kind), in inches from the bottom left.
_FORMAT_CHART_BOXES = {
    "start": (3.55, 6.55, "What are you saving?", "question"),
    "serving": (2.95, 5.35, "Must it run without Python,\nin TF Serving or TF Lite?",
                "question"),
    "loop": (2.95, 4.2, "Saving often, in a custom\ntraining loop?", "question"),
    "code": (2.95, 3.05, "Only the weights, with the\nmodel-building code at hand?",
             "question"),
    "large": (2.95, 1.9, "Hundreds of megabytes,\nor read by other tools?", "question"),
    "savedmodel": (0.85, 5.35, "SavedModel\nfor serving", "format"),
    "checkpoint": (0.85, 4.2, "TF checkpoint\ncustom loops", "format"),
    "weights": (0.85, 3.05, ".weights.h5\nweights only", "format"),
    "safetensors": (0.85, 1.9, ".safetensors\nlarge models", "format"),
    "keras": (2.95, 0.6, ".keras\nthe default", "format"),
    "shared": (5.85, 5.35, "Published, or loaded by\npeople outside your team?",
               "question"),
    "skops": (5.2, 4.05, ".skops\nno pickle", "format"),
    "joblib": (6.5, 4.05, ".joblib\na pickle", "format"),
}

#: The flowchart's arrows: (from, side, to, side, label).
_FORMAT_CHART_ARROWS = [
    ("start", "bottom", "serving", "top", "a Keras model"),
    ("start", "bottom", "shared", "top", "a scikit-learn model,\nor any Python object"),
    ("serving", "left", "savedmodel", "right", "yes"),
    ("loop", "left", "checkpoint", "right", "yes"),
    ("code", "left", "weights", "right", "yes"),
    ("large", "left", "safetensors", "right", "yes"),
    ("serving", "bottom", "loop", "top", "no"),
    ("loop", "bottom", "code", "top", "no"),
    ("code", "bottom", "large", "top", "no"),
    ("large", "bottom", "keras", "top", "no"),
    ("shared", "bottom", "skops", "top", "yes"),
    ("shared", "bottom", "joblib", "top", "no"),
]


def format_flowchart(lang=None):
    """Questions that lead to a format: Keras models on the left, others on the right.

    Every box but the first is reached by an arrow. The figure is drawn at the
    width of the book's text column, so its text stays at least 12 px high.
    """
    import matplotlib.pyplot as plt

    styles = {
        "question": dict(boxstyle="round,pad=0.35", facecolor="#fff4d6",
                         edgecolor="#b8860b"),
        "format": dict(boxstyle="round,pad=0.35", facecolor="#dff0e3",
                       edgecolor="#2e7d32"),
    }
    width, height = 7.2, 7.0
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))  # one data unit is one inch
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    boxes = {name: ax.text(x, y, _label(text, lang), ha="center", va="center",
                           fontsize=10, bbox=styles[kind], zorder=3)
             for name, (x, y, text, kind) in _FORMAT_CHART_BOXES.items()}
    fig.canvas.draw()  # the boxes' sizes are known only once their text is laid out
    to_data = ax.transData.inverted()

    def side_of(name, side):
        extent = boxes[name].get_bbox_patch().get_window_extent()
        (x0, y0), (x1, y1) = to_data.transform(extent)
        return {"top": ((x0 + x1) / 2, y1), "bottom": ((x0 + x1) / 2, y0),
                "left": (x0, (y0 + y1) / 2), "right": (x1, (y0 + y1) / 2)}[side]

    for source, source_side, target, target_side, label in _FORMAT_CHART_ARROWS:
        start, end = side_of(source, source_side), side_of(target, target_side)
        ax.annotate("", xy=end, xytext=start, zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.2,
                                    shrinkA=0, shrinkB=1))
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        # Each label sits on the side of its arrow where the line is not.
        if abs(end[1] - start[1]) < 0.01:  # sideways
            placement = dict(xytext=(0, 3), ha="center", va="bottom")
        elif abs(end[0] - start[0]) < 0.01:  # straight down
            placement = dict(xytext=(6, 0), ha="left", va="center")
        elif end[0] < start[0]:  # down and to the left
            placement = dict(xytext=(-4, 4), ha="right", va="bottom")
        else:  # down and to the right
            placement = dict(xytext=(4, 4), ha="left", va="bottom")
        ax.annotate(_label(label, lang), middle, textcoords="offset points",
                    fontsize=9.5, color="#333333", **placement,
                    # CJK fonts have no italic, and matplotlib would take DejaVu's instead.
                    style="italic" if _language(lang) == "en" else "normal")
    return fig


TRANSLATIONS["zh_CN"].update({
    "What are you saving?": "要保存的是什么？",
    "Must it run without Python,\nin TF Serving or TF Lite?":
        "需要脱离 Python 运行，\n例如 TF Serving 或 TF Lite？",
    "Saving often, in a custom\ntraining loop?": "在自定义训练循环中\n频繁保存？",
    "Only the weights, with the\nmodel-building code at hand?":
        "只需要权重，并且手头\n有构建模型的代码？",
    "Hundreds of megabytes,\nor read by other tools?": "数百 MB 以上，\n或需要其他工具读取？",
    "SavedModel\nfor serving": "SavedModel\n用于部署",
    "TF checkpoint\ncustom loops": "TF checkpoint\n自定义循环",
    ".weights.h5\nweights only": ".weights.h5\n仅权重",
    ".safetensors\nlarge models": ".safetensors\n大模型",
    ".keras\nthe default": ".keras\n默认格式",
    "Published, or loaded by\npeople outside your team?": "会公开发布，\n或由团队外的人加载吗？",
    ".skops\nno pickle": ".skops\n不含 pickle",
    ".joblib\na pickle": ".joblib\n基于 pickle",
    "a Keras model": "Keras 模型",
    "a scikit-learn model,\nor any Python object": "scikit-learn 模型\n或其他 Python 对象",
    "yes": "是",
    "no": "否",
})


# --- performance -------------------------------------------------------------



# --- checkpoints, legacy, safety ----------------------------------------------


def kept_checkpoints(history: dict, kept_epochs, best_epoch: int, lang: str | None = None):
    """Training and validation loss per epoch, with the checkpoints that were kept marked.

    ``history`` is the ``history`` dict of ``fit`` (``loss`` and ``val_loss``);
    ``kept_epochs`` are the epochs of the checkpoints left on disk, and
    ``best_epoch`` the one kept for its lowest validation loss (a star).
    The right panel zooms in on the validation loss from epoch 8 on.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    epochs = np.arange(1, len(history["val_loss"]) + 1)
    val_loss = np.asarray(history["val_loss"])
    newest = [epoch for epoch in kept_epochs if epoch != best_epoch]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(epochs, history["loss"], color="tab:gray", label=_label("training loss", lang))
    left.set_yscale("log")
    left.set_ylabel(_label("loss (log scale)", lang))
    left.set_title(_label("both losses", lang))
    right.set_title(_label("validation loss from epoch 8", lang))
    zoom = epochs >= 8
    for ax, shown in ((left, epochs > 0), (right, zoom)):
        ax.plot(epochs[shown], val_loss[shown], color="tab:blue",
                label=_label("validation loss", lang))
        ax.scatter(newest, val_loss[np.asarray(newest) - 1], s=60, facecolors="none",
                   edgecolors="tab:orange", linewidths=2, zorder=3, clip_on=False,
                   label=_label("kept: the newest two", lang))
        ax.scatter([best_epoch], [val_loss[best_epoch - 1]], s=140, marker="*",
                   color="tab:red", zorder=3, clip_on=False,
                   label=_label("kept: lowest validation loss", lang))
        ax.set_xlabel(_label("epoch", lang))
        ax.grid(alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    # Below both panels, where it cannot cover a curve.
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8,
               bbox_to_anchor=(0.5, -0.06))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig



def tf1_saves(batch_losses, saved_steps, kept_steps, lang: str | None = None):
    """A TF1 run's loss per training step, with every save marked.

    Saves the ``Saver`` deleted again are hollow grey circles; the ones that
    are still on disk (``kept_steps``) are red dots.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    steps = np.arange(1, len(batch_losses) + 1)
    losses = np.asarray(batch_losses)
    deleted = [step for step in saved_steps if step not in kept_steps]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(steps, losses, color="tab:blue", lw=1.2, label=_label("batch loss", lang))
    ax.scatter(deleted, losses[np.asarray(deleted) - 1], facecolors="white",
               edgecolors="tab:gray", zorder=3, clip_on=False,
               label=_label("saved, later deleted by the Saver", lang))
    ax.scatter(kept_steps, losses[np.asarray(kept_steps) - 1], color="tab:red", zorder=3,
               clip_on=False, label=_label("saved and kept", lang))
    ax.set_xlabel(_label("training step (one batch of 128 images)", lang))
    ax.set_ylabel(_label("cross-entropy loss", lang))
    ax.set_xlim(0, len(losses) + 2)
    ax.legend(frameon=False, loc="upper right")  # the loss is low by then
    return fig


def digit_kernels(kernel, lang: str | None = None):
    """Each column of a 64x10 softmax-regression kernel drawn as an 8x8 image.

    Red pixels raise the score of the column's digit, blue ones lower it, on
    one colour scale shared by all ten.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    limit = np.abs(kernel).max()
    fig, axes = plt.subplots(1, 10, figsize=(10, 1.6))
    for digit, ax in enumerate(axes):
        ax.imshow(kernel[:, digit].reshape(8, 8), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(_label("digit {k}", lang).format(k=digit), fontsize=9)
        ax.axis("off")
    return fig


TRANSLATIONS["zh_CN"].update({
    "training loss": "训练损失",
    "validation loss": "验证损失",
    "loss (log scale)": "损失（对数坐标）",
    "both losses": "两种损失",
    "validation loss from epoch 8": "第 8 轮次起的验证损失",
    "kept: the newest two": "保留：最新的两个",
    "kept: lowest validation loss": "保留：验证损失最低",
    "epoch": "轮次",
    "batch loss": "批次损失",
    "saved, later deleted by the Saver": "已保存，后被 Saver 删除",
    "saved and kept": "已保存并保留",
    "training step (one batch of 128 images)": "训练步（一个批次 128 张图像）",
    "cross-entropy loss": "交叉熵损失",
    "digit {k}": "数字 {k}",
})


# --- performance ---------------------------------------------------------------


def measured_costs(values: dict, unit: str, lang: str | None = None):
    """One horizontal bar per measurement, its value written at the bar's end.

    ``values`` maps each label (top to bottom) to a number in ``unit``, for
    example milliseconds or GB/s; the performance appendix draws each of its
    measurements with this one function.
    """
    import matplotlib.pyplot as plt

    numbers = list(values.values())
    rows = range(len(numbers))
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.45 * len(numbers)))
    ax.barh(rows, numbers, color="tab:blue", height=0.6)
    for row, number in zip(rows, numbers):
        ax.text(number, row, f" {number:.3g}", va="center", fontsize=9)
    ax.set_yticks(rows, [_label(name, lang) for name in values])
    ax.invert_yaxis()  # the first measurement on top
    ax.set_xlim(0, max(numbers) * 1.2)  # room for the number after the longest bar
    ax.set_xlabel(_label(unit, lang))
    ax.grid(axis="x", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


TRANSLATIONS["zh_CN"].update({
    "GB per second (longer is faster)": "每秒 GB 数（越长越快）",
    "milliseconds (shorter is faster)": "毫秒（越短越快）",
    "seconds for 10 epochs (shorter is faster)": "10 个轮次所用秒数（越短越快）",
    "SHA-256": "SHA-256",
    "BLAKE3, one core": "BLAKE3，单核",
    "BLAKE3, all cores": "BLAKE3，全部核心",
    "copy the bytes": "复制这些字节",
    "joblib.load": "joblib.load",
    "joblib.dump": "joblib.dump",
    "joblib.dump, then fsync": "joblib.dump，再 fsync",
    "nnsave.save": "nnsave.save",
    "nnsave.load, first load": "nnsave.load，首次加载",
    "nnsave.load, digest cached": "nnsave.load，摘要已缓存",
    "one BLAKE3 hash of the file": "对文件做一次 BLAKE3 哈希",
    "no checkpoints": "不保存检查点",
    "a checkpoint every epoch": "每个轮次一个检查点",
    "a checkpoint every 5 epochs": "每 5 个轮次一个检查点",
    "every epoch, in the background": "每个轮次，后台保存",
})

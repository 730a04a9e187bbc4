"""Small helpers that the book's notebooks share.

Each chapter writes its files into a folder of its own, prints errors the way a
reader wants to see them, and draws its larger figures with
:mod:`nnsave.book.figures`. None of this is needed to use nnsave itself; it
lives in the package so that a notebook downloaded on its own still runs
wherever nnsave is installed (``pip install "nnsave[book]"``).
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

__all__ = ["WIDTH", "workspace", "show_error", "wrap"]

#: The book's column limit, for code and for printed output alike.
WIDTH = 88


def workspace(chapter: str) -> Path:
    """A fresh, empty folder ``./<chapter>-files`` for what one chapter writes.

    A folder left by an earlier, interrupted run is emptied first, so every
    run starts from the same state. The chapter removes it in its last cell
    with ``shutil.rmtree(work)``.

    Examples
    --------
    >>> import shutil
    >>> work = workspace("example")
    >>> work.name, list(work.iterdir())
    ('example-files', [])
    >>> shutil.rmtree(work)
    """
    folder = Path(f"{chapter}-files")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def wrap(text: str, width: int = WIDTH, indent: str = "") -> str:
    """``text`` wrapped to ``width`` columns, paragraph by paragraph.

    Lines that are already short enough are kept as they are.

    >>> print(wrap("a " * 50, width=20).splitlines()[0])
    a a a a a a a a a a
    """
    paragraphs = str(text).split("\n")
    return "\n".join(
        line if len(line) <= width else textwrap.fill(
            line, width, initial_indent=indent, subsequent_indent=indent + "  "
        )
        for line in paragraphs
    )


def show_error(error: BaseException, width: int = WIDTH) -> None:
    """Print ``TypeName: message``, wrapped to ``width`` columns.

    >>> show_error(ValueError("an example message"))
    ValueError: an example message
    """
    print(wrap(f"{type(error).__name__}: {error}", width))

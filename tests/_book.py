"""The book's table of contents, as the tests see it (book/_tools/book_files.py)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "book" / "_tools"
sys.path.insert(0, str(TOOLS))

from book_files import toc_entries, toc_notebooks  # noqa: E402

__all__ = ["ROOT", "TOOLS", "toc_entries", "toc_notebooks"]

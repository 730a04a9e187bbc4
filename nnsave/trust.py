"""The one place that decides whether a file may be deserialised.

Two questions decide it. Can reading this format run code from the file?
(A pickle always can; a ``.keras`` archive can only with ``safe_mode=False``.)
And if so, has anyone vouched for the file? A manifest whose hash matched
vouches that these are the bytes nnsave wrote; ``trusted=True`` is the caller
vouching personally. Nothing else does, and there is no global override.
"""

from __future__ import annotations

import enum
from pathlib import Path

from .errors import UntrustedFileError
from .formats import FormatHandler, LoadOptions

__all__ = ["Verification", "authorize_load"]


class Verification(enum.Enum):
    """What the integrity check established before loading."""

    VERIFIED = "verified"
    MISMATCH = "mismatch"
    NO_MANIFEST = "no manifest"
    SKIPPED = "skipped"


def authorize_load(
    path: Path,
    handler: FormatHandler,
    options: LoadOptions,
    *,
    verification: Verification,
    trusted: bool,
) -> None:
    """Return if ``path`` may be read; raise :class:`UntrustedFileError` otherwise."""
    if not handler.runs_code_on_load(options) or trusted:
        return
    if verification is Verification.VERIFIED:
        return
    reason = {
        Verification.MISMATCH: "its bytes do not match its manifest",
        Verification.NO_MANIFEST: "it has no nnsave manifest, so nothing shows where it came from",
        Verification.SKIPPED: "verify=False skipped the integrity check",
    }[verification]
    what = "a pickle-based file" if handler.name == "joblib" else f"a {handler.name} file in this mode"
    raise UntrustedFileError(
        f"Refusing to load {path}: it is {what}, and loading it can run arbitrary "
        f"code, but {reason}. Pass trusted=True only if you made this file yourself "
        "or got it from someone you trust."
    )

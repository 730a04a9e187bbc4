"""The one place that decides whether a file may be deserialised.

Three questions decide it.

* Can reading this format run code from the file? A pickle always can; a
  ``.keras`` archive can only with ``safe_mode=False``; a ``.skops`` file
  builds only types it knows, plus any the caller approves by name.
* Has anyone vouched for the file? A manifest whose hash matched vouches that
  these are the bytes nnsave wrote (integrity, not origin: anyone can run
  nnsave); ``expected_sha256`` vouches for exactly one file; ``trusted=True``
  is the caller vouching personally.
* Does the caller hold a key? Then the manifest must carry a valid HMAC
  signature under that key (origin: only a key holder could have signed it).

Nothing else counts, and there is no global override.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from .errors import UntrustedFileError
from .formats import FormatHandler, LoadOptions
from .manifest import Manifest

__all__ = ["KEY_ENVIRONMENT_VARIABLE", "Verification", "resolve_key", "check_signature", "authorize_load"]

#: Holds the signing key when none is passed to save or load.
KEY_ENVIRONMENT_VARIABLE = "NNSAVE_KEY"


class Verification(enum.Enum):
    """What the integrity check established before loading."""

    VERIFIED = "verified"
    PINNED = "pinned"
    MISMATCH = "mismatch"
    NO_MANIFEST = "no manifest"
    SKIPPED = "skipped"


def resolve_key(key: bytes | str | None) -> bytes | None:
    """The key passed in, else the one in ``NNSAVE_KEY``, as bytes; None if neither."""
    if key is None:
        key = os.environ.get(KEY_ENVIRONMENT_VARIABLE) or None
    if key is None:
        return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or not key:
        raise TypeError("key must be a non-empty str or bytes.")
    return key


def check_signature(path: Path, manifest: Manifest | None, key: bytes) -> None:
    """Raise :class:`UntrustedFileError` unless ``manifest`` is signed with ``key``."""
    if manifest is None:
        raise UntrustedFileError(
            f"Refusing to load {path}: a key was given, but the file has no nnsave "
            "manifest and so no signature. Ask its author for the signed manifest."
        )
    if manifest.signature is None:
        raise UntrustedFileError(
            f"Refusing to load {path}: a key was given, but its manifest is not signed. "
            "Re-save it with nnsave.save(..., key=...) if you made it yourself."
        )
    expected = hmac.new(key, manifest.signed_bytes(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, manifest.signature):
        raise UntrustedFileError(
            f"Refusing to load {path}: its manifest's signature does not match the key. "
            "The manifest was changed after signing, or signed with another key."
        )


def authorize_load(
    path: Path,
    handler: FormatHandler,
    options: LoadOptions,
    *,
    verification: Verification,
    trusted: bool,
    trusted_types: Iterable[str] = (),
) -> LoadOptions:
    """Return the options to read ``path`` with, or raise :class:`UntrustedFileError`."""
    options = _approve_types(path, handler, options, trusted=trusted, trusted_types=trusted_types)
    if not handler.runs_code_on_load(options) or trusted:
        return options
    if verification in (Verification.VERIFIED, Verification.PINNED):
        return options
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


def _approve_types(
    path: Path, handler: FormatHandler, options: LoadOptions, *, trusted: bool, trusted_types: Iterable[str]
) -> LoadOptions:
    needing_trust = handler.types_needing_trust(path)
    if not needing_trust:
        return options
    if not trusted:
        missing = sorted(set(needing_trust) - set(trusted_types))
        if missing:
            raise UntrustedFileError(
                f"Refusing to load {path}: it contains types outside the safe set, which "
                f"could run code when built: {', '.join(missing)}. If you know them, pass "
                "them as trusted_types=[...]; nnsave.inspect lists them without loading."
            )
    return replace(options, approved_types=tuple(needing_trust))

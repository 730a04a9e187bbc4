"""The sidecar manifest: what was saved, by which versions, with which hash.

For ``model.keras`` the manifest is ``model.keras.nnsave.json``. It is plain
JSON so that people and other tools can read it. The functions here are pure:
they build, parse and compare manifests but never touch the disk.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import hmac
import json
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata as _importlib_metadata
from pathlib import Path
from typing import Any

from .errors import IntegrityError

__all__ = [
    "MANIFEST_SUFFIX",
    "SCHEMA_VERSION",
    "MAX_MANIFEST_BYTES",
    "TRACKED_LIBRARIES",
    "Manifest",
    "manifest_path",
    "installed_versions",
    "check_metadata",
    "build_manifest",
    "parse_manifest",
    "version_mismatches",
]

MANIFEST_SUFFIX = ".nnsave.json"
SCHEMA_VERSION = 1
#: A manifest is a few kilobytes; anything far larger is not one of ours.
MAX_MANIFEST_BYTES = 1 << 20

#: The distributions whose versions every manifest records.
TRACKED_LIBRARIES = ("numpy", "tensorflow", "keras", "scikit-learn", "joblib", "skops")

_REQUIRED_FIELDS = {
    "schema_version": int,
    "format": str,
    "nnsave_version": str,
    "sha256": str,
    "size": int,
    "created_utc": str,
    "versions": dict,
    "class": str,
    "metadata": dict,
}
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest."""

    format: str
    sha256: str
    size: int
    nnsave_version: str
    created_utc: str
    versions: dict[str, str | None]
    class_path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    #: HMAC-SHA256 (hex) of :meth:`signed_bytes` under the saver's key, if signed.
    signature: str | None = None

    def to_json(self) -> str:
        document = self._document()
        if self.signature is not None:
            document["signature"] = self.signature
        return json.dumps(document, indent=2, sort_keys=False) + "\n"

    def signed_bytes(self) -> bytes:
        """The canonical bytes a signature covers: every field but the signature."""
        return json.dumps(self._document(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    def signed_with(self, key: bytes) -> "Manifest":
        """A copy of this manifest carrying an HMAC-SHA256 signature under ``key``."""
        return replace(self, signature=hmac.new(key, self.signed_bytes(), hashlib.sha256).hexdigest())

    def _document(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "format": self.format,
            "nnsave_version": self.nnsave_version,
            "sha256": self.sha256,
            "size": self.size,
            "created_utc": self.created_utc,
            "versions": self.versions,
            "class": self.class_path,
            "metadata": self.metadata,
        }


def manifest_path(payload: Path) -> Path:
    """The manifest that belongs to ``payload``."""
    payload = Path(payload)
    return payload.with_name(payload.name + MANIFEST_SUFFIX)


def installed_versions() -> dict[str, str | None]:
    """Python's version and those of the tracked libraries (``None`` if absent).

    A library already imported reports its own ``__version__``: the code that
    runs. The others are read from package metadata, so nothing heavy is
    imported just to learn a version.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        module = sys.modules.get(_IMPORT_NAMES.get(name, name))
        running = getattr(module, "__version__", None)
        if isinstance(running, str):
            versions[name] = running
            continue
        try:
            versions[name] = _installed_version(name)
        except _importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# Distribution names whose importable module is named differently.
_IMPORT_NAMES = {"scikit-learn": "sklearn"}


@functools.lru_cache(maxsize=None)
def _installed_version(name: str) -> str:
    # Reading package metadata takes milliseconds, and every save and load asks.
    # Found versions are cached; a missing package raises, which is not cached.
    return _importlib_metadata.version(name)


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``metadata`` as a plain dict, or raise ``TypeError`` if JSON cannot hold it."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}.")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"metadata must be JSON-serialisable (str keys; str, int, float, bool, None, "
            f"lists and dicts of them; no NaN): {error}. Convert the value, for example "
            f"with float() or .tolist(), and save again. Nothing was written."
        ) from error
    return json.loads(text)


def build_manifest(
    *,
    format_name: str,
    sha256: str,
    size: int,
    class_path: str,
    metadata: dict[str, Any],
    nnsave_version: str,
    now: _dt.datetime | None = None,
) -> Manifest:
    """Describe a payload that has just been written."""
    moment = now or _dt.datetime.now(_dt.timezone.utc)
    return Manifest(
        format=format_name,
        sha256=sha256,
        size=size,
        nnsave_version=nnsave_version,
        created_utc=moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        versions=installed_versions(),
        class_path=class_path,
        metadata=metadata,
    )


def parse_manifest(data: bytes, *, source: Path) -> Manifest:
    """Validate and parse a manifest's bytes; :class:`IntegrityError` if damaged."""

    def damaged(reason: str) -> IntegrityError:
        return IntegrityError(
            f"The manifest {source} is damaged ({reason}). Restore it from a backup, "
            f"or re-save the model with nnsave.save to write a new one."
        )

    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise damaged(f"not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise damaged("not a JSON object")
    for name, expected_type in _REQUIRED_FIELDS.items():
        value = document.get(name)
        if not isinstance(value, expected_type) or isinstance(value, bool):
            raise damaged(f"field {name!r} is missing or not a {expected_type.__name__}")
    if document["schema_version"] > SCHEMA_VERSION:
        raise damaged(
            f"schema version {document['schema_version']} is newer than this nnsave "
            f"understands ({SCHEMA_VERSION}); upgrade nnsave"
        )
    if not _SHA256_PATTERN.match(document["sha256"]):
        raise damaged("field 'sha256' is not 64 lowercase hex digits")
    if document["size"] < 0:
        raise damaged("field 'size' is negative")
    signature = document.get("signature")
    if signature is not None and not (isinstance(signature, str) and _SHA256_PATTERN.match(signature)):
        raise damaged("field 'signature' is not 64 lowercase hex digits")
    versions = document["versions"]
    if not all(isinstance(v, (str, type(None))) for v in versions.values()):
        raise damaged("field 'versions' holds a value that is not a string")
    return Manifest(
        format=document["format"],
        sha256=document["sha256"],
        size=document["size"],
        nnsave_version=document["nnsave_version"],
        created_utc=document["created_utc"],
        versions=versions,
        class_path=document["class"],
        metadata=document["metadata"],
        schema_version=document["schema_version"],
        signature=signature,
    )


def _release(version: str) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", version.split("+")[0])
    return tuple(int(n) for n in numbers[:3])


def version_mismatches(
    saved: Mapping[str, str | None],
    installed: Mapping[str, str | None],
    *,
    strictness: Mapping[str, int],
) -> list[tuple[str, str, str]]:
    """The libraries whose versions differ enough to matter.

    ``strictness`` maps a library to how many leading release numbers must
    agree: 1 compares major versions, 3 compares the full release. A library
    missing on either side is not compared. Returns ``(name, saved, installed)``.
    """
    mismatches = []
    for name, depth in strictness.items():
        then, now = saved.get(name), installed.get(name)
        if then is None or now is None:
            continue
        if _release(then)[:depth] != _release(now)[:depth]:
            mismatches.append((name, then, now))
    return mismatches

"""The sidecar manifest: what was saved, by which versions, with which digest.

For ``model.keras`` the manifest is ``model.keras.nnsave.json``. It is plain
JSON so that people and other tools can read it. The functions here are pure:
they build, parse and compare manifests but never touch the disk.

Schema 2 (written since nnsave 0.2)::

    {
      "schema_version": 2,
      "format": "keras",
      "nnsave_version": "0.2.0",
      "size": 48961,
      "digests": {"blake3": "<64 hex>", "sha256": "<64 hex, on request>"},
      "created_utc": "2026-11-30T12:00:00Z",
      "versions": {"python": "3.11.7", "keras": "3.15.1", "keras_backend": "tensorflow", ...},
      "class": "keras.src.models.sequential.Sequential",
      "expects": {"inputs": [...], "outputs": [...]},
      "metadata": {"epoch": 20},
      "signature": {"algorithm": "hmac-sha256", "key_id": "<16 hex>", "value": "<64 hex>"}
    }

Schema 1 manifests (a top-level ``sha256``, a bare hex ``signature``) are
still read, and their signatures still checked.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata as _importlib_metadata
from pathlib import Path
from typing import Any

from . import parsing
from .errors import IntegrityError, InvalidArgumentError, Problem
from .hashing import ALGORITHMS, Digest, is_hex_digest

__all__ = [
    "MANIFEST_SUFFIX",
    "SCHEMA_VERSION",
    "MAX_MANIFEST_BYTES",
    "SIGNATURE_ALGORITHM",
    "Signature",
    "Manifest",
    "manifest_path",
    "payload_path",
    "installed_versions",
    "check_metadata",
    "build_manifest",
    "parse_manifest",
    "version_mismatches",
]

MANIFEST_SUFFIX = ".nnsave.json"
SCHEMA_VERSION = 2
#: A manifest is a few kilobytes; anything far larger is not one of ours.
MAX_MANIFEST_BYTES = 1 << 20
SIGNATURE_ALGORITHM = "hmac-sha256"
_KEY_ID = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class Signature:
    """An HMAC over the manifest's other fields; ``key_id`` is None in schema 1."""

    value: str
    key_id: str | None = None
    algorithm: str = SIGNATURE_ALGORITHM


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest."""

    format: str
    size: int
    digests: dict[str, str]
    nnsave_version: str
    created_utc: str
    versions: dict[str, str | None]
    class_path: str
    metadata: dict[str, Any] = field(default_factory=dict)
    expects: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    signature: Signature | None = None

    def document(self) -> dict[str, Any]:
        """Every field but the signature, in the layout of this manifest's schema."""
        if self.schema_version == 1:
            return {
                "schema_version": 1,
                "format": self.format,
                "nnsave_version": self.nnsave_version,
                "sha256": self.digests["sha256"],
                "size": self.size,
                "created_utc": self.created_utc,
                "versions": self.versions,
                "class": self.class_path,
                "metadata": self.metadata,
            }
        return {
            "schema_version": self.schema_version,
            "format": self.format,
            "nnsave_version": self.nnsave_version,
            "size": self.size,
            "digests": self.digests,
            "created_utc": self.created_utc,
            "versions": self.versions,
            "class": self.class_path,
            "expects": self.expects,
            "metadata": self.metadata,
        }

    def signed_bytes(self) -> bytes:
        """The canonical bytes a signature covers: every field but the signature."""
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    def to_json(self) -> str:
        document = self.document()
        if self.signature is not None:
            document["signature"] = {
                "algorithm": self.signature.algorithm,
                "key_id": self.signature.key_id,
                "value": self.signature.value,
            }
        return json.dumps(document, indent=2) + "\n"

    def with_signature(self, signature: Signature) -> Manifest:
        return replace(self, signature=signature)

    def describes(self, digest: Digest) -> bool:
        """True if ``digest`` is the payload this manifest describes."""
        return digest.agrees_with(self.size, self.digests)

    @property
    def preferred_algorithm(self) -> str:
        """The strongest algorithm the manifest records, which a check uses."""
        return next(name for name in ALGORITHMS if name in self.digests)


def manifest_path(payload: Any) -> Any:
    """The manifest that belongs to ``payload`` (a path, or a location on an object store)."""
    payload = payload if hasattr(payload, "with_name") else Path(payload)
    return payload.with_name(payload.name + MANIFEST_SUFFIX)


def payload_path(manifest: Any) -> Any:
    """The payload a manifest belongs to."""
    manifest = manifest if hasattr(manifest, "with_name") else Path(manifest)
    return manifest.with_name(manifest.name[: -len(MANIFEST_SUFFIX)])


def installed_versions(libraries: Iterable[str]) -> dict[str, str | None]:
    """Python's version and those of ``libraries`` (``None`` if absent).

    A library already imported reports its own ``__version__``: the code that
    runs. The others are read from package metadata, so nothing heavy is
    imported just to learn a version.
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in libraries:
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
    # Reading package metadata takes milliseconds, and every save asks.
    return _importlib_metadata.version(name)


def check_metadata(metadata: Mapping[str, Any] | None, target: Path) -> dict[str, Any]:
    """Return ``metadata`` as a plain dict, or raise if a manifest cannot hold it as given.

    Keys must be strings at every level (JSON would silently turn ``1`` into
    ``"1"``), and values must be JSON numbers, strings, booleans, None, or
    lists and dicts of them; NaN and infinity are refused.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(
            f"{target}: metadata must be a dict, not {type(metadata).__name__}. Nothing was written."
        )
    _check_keys(metadata, target, "metadata")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidArgumentError(
            f"{target}: metadata must be JSON-serialisable (str keys; str, int, float, "
            f"bool, None, lists and dicts of them; no NaN): {error}. Convert the value, "
            f"for example with float() or .tolist(), and save again. Nothing was written."
        ) from error
    return json.loads(text)


def _check_keys(node: Any, target: Path, where: str) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                raise InvalidArgumentError(
                    f"{target}: {where} has the key {key!r} of type {type(key).__name__}; "
                    f"manifest keys must be strings (use {str(key)!r}). Nothing was written."
                )
            _check_keys(value, target, f"{where}[{key!r}]")
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _check_keys(value, target, f"{where}[{index}]")


def build_manifest(
    *,
    format_name: str,
    digest: Digest,
    class_path: str,
    versions: dict[str, str | None],
    metadata: dict[str, Any],
    expects: dict[str, Any],
    nnsave_version: str,
    now: _dt.datetime | None = None,
) -> Manifest:
    """Describe a payload that has just been written."""
    moment = now or _dt.datetime.now(_dt.timezone.utc)
    return Manifest(
        format=format_name,
        size=digest.size,
        digests=dict(digest.values),
        nnsave_version=nnsave_version,
        created_utc=moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        versions=versions,
        class_path=class_path,
        metadata=metadata,
        expects=expects,
    )


def parse_manifest(data: bytes, *, source: Path) -> Manifest:
    """Validate and parse a manifest's bytes; :class:`IntegrityError` if it is damaged."""

    def damaged(reason: str) -> IntegrityError:
        return IntegrityError(
            f"The manifest {source} is damaged ({reason}). Restore it from a backup, "
            f"or save the model again with nnsave.save to write a new one.",
            Problem.DAMAGED_MANIFEST,
        )

    document = parsing.load_json(data, damaged)
    version = parsing.field(document, "schema_version", int, damaged)
    if version > SCHEMA_VERSION:
        raise damaged(
            f"schema version {version} is newer than this nnsave understands "
            f"({SCHEMA_VERSION}); upgrade nnsave"
        )
    if version < 1:
        raise damaged(f"schema version {version} does not exist")
    size = parsing.field(document, "size", int, damaged)
    if size < 0:
        raise damaged("field 'size' is negative")
    if version == 1:
        sha256 = parsing.field(document, "sha256", str, damaged)
        digests = {"sha256": sha256}
        expects: dict[str, Any] = {}
        signature = _legacy_signature(document, damaged)
    else:
        digests = parsing.field(document, "digests", dict, damaged)
        expects = parsing.optional_field(document, "expects", dict, damaged) or {}
        signature = _signature(document, damaged)
    known = {name: value for name, value in digests.items() if name in ALGORITHMS}
    if not known:
        raise damaged(f"it records no digest nnsave knows ({', '.join(ALGORITHMS)})")
    for name, value in known.items():
        if not is_hex_digest(value):
            raise damaged(f"the {name} digest is not 64 lower-case hex digits")
    versions = parsing.field(document, "versions", dict, damaged)
    if not all(isinstance(v, (str, type(None))) for v in versions.values()):
        raise damaged("field 'versions' holds a value that is not a string")
    return Manifest(
        format=parsing.field(document, "format", str, damaged),
        size=size,
        digests=known,
        nnsave_version=parsing.field(document, "nnsave_version", str, damaged),
        created_utc=parsing.field(document, "created_utc", str, damaged),
        versions=versions,
        class_path=parsing.field(document, "class", str, damaged),
        metadata=parsing.field(document, "metadata", dict, damaged),
        expects=expects,
        schema_version=version,
        signature=signature,
    )


def _legacy_signature(document: dict[str, Any], damaged: Any) -> Signature | None:
    value = document.get("signature")
    if value is None:
        return None
    if not is_hex_digest(value):
        raise damaged("field 'signature' is not 64 lower-case hex digits")
    return Signature(value)


def _signature(document: dict[str, Any], damaged: Any) -> Signature | None:
    entry = parsing.optional_field(document, "signature", dict, damaged)
    if entry is None:
        return None
    algorithm = parsing.field(entry, "algorithm", str, damaged)
    value = parsing.field(entry, "value", str, damaged)
    key_id = parsing.optional_field(entry, "key_id", str, damaged)
    if algorithm != SIGNATURE_ALGORITHM:
        raise damaged(f"its signature uses {algorithm!r}; nnsave knows {SIGNATURE_ALGORITHM!r}")
    if not is_hex_digest(value) or (key_id is not None and not _KEY_ID.fullmatch(key_id)):
        raise damaged("its signature is not in the form nnsave writes")
    return Signature(value, key_id, algorithm)


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

    >>> version_mismatches({"keras": "3.1.0"}, {"keras": "3.15.1"}, strictness={"keras": 1})
    []
    >>> version_mismatches({"keras": "2.15.0"}, {"keras": "3.15.1"}, strictness={"keras": 1})
    [('keras', '2.15.0', '3.15.1')]
    """
    mismatches = []
    for name, depth in strictness.items():
        then, now = saved.get(name), installed.get(name)
        if then is None or now is None:
            continue
        if _release(then)[:depth] != _release(now)[:depth]:
            mismatches.append((name, then, now))
    return mismatches

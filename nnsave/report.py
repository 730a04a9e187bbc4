"""What :func:`nnsave.inspect` reports, and how it reads on a screen."""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .keys import SignatureStatus
from .trust import Integrity

__all__ = ["ArtifactInfo", "TEXT_WIDTH", "human_size"]

#: The text form fits this many columns (a terminal, a book page).
TEXT_WIDTH = 88
_LISTED = 12
_LABEL = 13
_EXPECTATION_LABELS = {"n_features_in": "features", "feature_names_in": "feature names"}


@dataclass(frozen=True)
class ArtifactInfo:
    """What :func:`nnsave.inspect` learns about a saved file without deserialising it.

    Attributes
    ----------
    path : pathlib.Path
        The payload file (or a TensorFlow checkpoint prefix).
    format : str
        The format's name: ``"keras"``, ``"keras-safetensors"``, ``"joblib"``,
        ``"skops"``, or ``"tf-checkpoint"``.
    size : int
        The payload's size in bytes.
    integrity : Integrity
        Whether the payload matches its manifest.
    signature : SignatureStatus
        Whether the manifest is signed with your key (or the key you named).
    digests : dict
        The payload's actual digests (``"blake3"``, and ``"sha256"`` when the
        manifest records one).
    problem : str or None
        Why the integrity is not ``INTACT``.
    class_path : str or None
        The saved object's class, from the manifest.
    versions : dict
        Library versions that wrote the file, from the manifest.
    expects : dict
        What the model expects and returns (input and output shapes and
        dtypes; an estimator's feature count, feature names and classes).
    metadata : dict
        The caller's metadata, from the manifest.
    created_utc : str or None
        When the file was saved, from the manifest.
    layers : list of dict or None
        Keras files: each top-level layer's ``name`` and ``type``.
    parameter_count : int or None
        Keras files: the number of weights in the model.
    details : dict
        Other format-specific facts (a joblib file's compression, say).
    variables : list of dict or None
        TensorFlow checkpoints: each variable's ``name``, ``shape`` and ``dtype``.
    """

    path: Path
    format: str
    size: int
    integrity: Integrity
    signature: SignatureStatus = SignatureStatus.NO_MANIFEST
    digests: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    class_path: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    expects: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_utc: str | None = None
    layers: list[dict[str, str]] | None = None
    parameter_count: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    variables: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        document = asdict(self)
        document["path"] = str(self.path)
        document["integrity"] = self.integrity.value
        document["signature"] = self.signature.value
        return document

    def __str__(self) -> str:
        lines = [f"{self.path.name}  ({self.format}, {human_size(self.size)})"]
        integrity = self.integrity.value + (f": {self.problem}" if self.problem else "")
        lines += _field("integrity", integrity)
        if self.integrity is not Integrity.NO_MANIFEST or self.signature is not SignatureStatus.NO_MANIFEST:
            lines += _field("signature", self.signature.value)
        for algorithm, value in self.digests.items():
            lines += _field(algorithm, value)
        if self.class_path:
            lines += _field("class", self.class_path)
        if self.created_utc:
            lines += _field("saved", self.created_utc)
        saved_with = ", ".join(f"{name} {version}" for name, version in self.versions.items() if version)
        if saved_with:
            lines += _field("saved with", saved_with)
        for key, value in self.expects.items():
            lines += _field(_EXPECTATION_LABELS.get(key, key.replace("_", " ")), _describe_expectation(value))
        if self.parameter_count is not None:
            lines += _field("parameters", f"{self.parameter_count:,}")
        if self.layers:
            lines += _field("layers", str(len(self.layers)))
            lines += [f"    {layer['name'][:40]:<40} {layer['type'][:40]}" for layer in self.layers[:_LISTED]]
            if len(self.layers) > _LISTED:
                lines.append(f"    ... and {len(self.layers) - _LISTED} more")
        if self.variables:
            lines += _field("variables", str(len(self.variables)))
            shown = self.variables[:_LISTED]
            width = min(48, max(len(v["name"]) for v in shown))
            lines += [f"    {v['name'][:width]:<{width}}  {v['dtype']:<8} {tuple(v['shape'])}" for v in shown]
            if len(self.variables) > _LISTED:
                lines.append(f"    ... and {len(self.variables) - _LISTED} more")
        for key, value in self.details.items():
            lines += _field(key.replace("_", " "), str(value))
        if self.metadata:
            lines += _field("metadata", _truncate(repr(self.metadata), 300))
        return "\n".join(lines)


def _field(label: str, value: str) -> list[str]:
    """``  label      : value``, wrapped to :data:`TEXT_WIDTH` columns."""
    head = f"  {label:<{_LABEL}}: "
    return textwrap.wrap(
        value, TEXT_WIDTH, initial_indent=head, subsequent_indent=" " * len(head), break_on_hyphens=False
    ) or [head.rstrip()]


def _describe_expectation(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(item, dict) and "shape" in item for item in value):
        return "; ".join(
            " ".join(str(part) for part in (item.get("name"), tuple(item["shape"]), item.get("dtype")) if part)
            for item in value
        )
    return _truncate(repr(value), 300)


def human_size(size: int) -> str:
    """``48.9 KB``: sizes in the units people read (powers of 1024)."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""The public verbs: save, load, inspect, verify and roundtrip.

This module checks arguments, picks a format handler, asks :mod:`nnsave.trust`
for permission and compares payloads with their manifests. It does no file IO
of its own beyond what :mod:`nnsave.storage` offers.
"""

from __future__ import annotations

import errno
import os
import tempfile
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import digest_cache, legacy, storage
from ._version import __version__
from .errors import FormatError, IntegrityError, UnverifiedFileWarning, VersionMismatchWarning
from .formats import FormatHandler, LoadOptions, class_path, handler_for_object, handler_for_path
from .manifest import (
    MANIFEST_SUFFIX,
    MAX_MANIFEST_BYTES,
    Manifest,
    build_manifest,
    check_metadata,
    installed_versions,
    manifest_path,
    parse_manifest,
    version_mismatches,
)
from .trust import Verification, authorize_load, check_signature, resolve_key

__all__ = ["ArtifactInfo", "RoundtripReport", "save", "load", "inspect", "verify", "roundtrip"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ArtifactInfo:
    """What :func:`inspect` learns about a saved file without deserialising it.

    Attributes
    ----------
    path : pathlib.Path
        The payload file.
    format : str
        The format handler's name, ``"keras"`` or ``"joblib"``; ``"tf-checkpoint"``
        for a TensorFlow checkpoint prefix.
    size : int
        The payload's size in bytes.
    hash_status : str
        ``"verified"``, ``"mismatch"`` or ``"no manifest"``.
    sha256 : str
        The payload's actual sha256.
    problem : str or None
        Why the status is not ``"verified"``.
    class_path : str or None
        The saved object's class, from the manifest.
    versions : dict
        Library versions that wrote the file, from the manifest.
    metadata : dict
        The caller's metadata, from the manifest.
    created_utc : str or None
        When the file was saved, from the manifest.
    layers : list of dict or None
        For ``.keras`` files: each top-level layer's ``name`` and ``type``.
    parameter_count : int or None
        For ``.keras`` files: the number of weights in the model.
    details : dict
        Other format-specific facts (the compression of a joblib file, say).
    variables : list of dict or None
        For TensorFlow checkpoints: each variable's ``name``, ``shape`` and ``dtype``.
    """

    path: Path
    format: str
    size: int
    hash_status: str
    sha256: str
    problem: str | None = None
    class_path: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
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
        return document

    def __str__(self) -> str:
        lines = [
            f"{self.path.name}  ({self.format}, {_human_size(self.size)})",
            f"  integrity    : {self.hash_status}" + (f" - {self.problem}" if self.problem else ""),
        ]
        if self.sha256:
            lines.append(f"  sha256       : {self.sha256}")
        if self.class_path:
            lines.append(f"  class        : {self.class_path}")
        if self.created_utc:
            lines.append(f"  saved        : {self.created_utc}")
        saved_with = ", ".join(f"{k} {v}" for k, v in self.versions.items() if v)
        if saved_with:
            lines += textwrap.wrap(saved_with, 96, initial_indent="  saved with   : ", subsequent_indent=" " * 17)
        if self.parameter_count is not None:
            lines.append(f"  parameters   : {self.parameter_count:,}")
        if self.layers:
            lines.append(f"  layers       : {len(self.layers)}")
            shown = self.layers[:12]
            lines += [f"    {layer['name']:<26} {layer['type']}" for layer in shown]
            if len(self.layers) > len(shown):
                lines.append(f"    ... and {len(self.layers) - len(shown)} more")
        if self.variables:
            lines.append(f"  variables    : {len(self.variables)}")
            shown = self.variables[:12]
            width = max(len(v["name"]) for v in shown)
            lines += [f"    {v['name']:<{width}}  {v['dtype']:<8} {tuple(v['shape'])}" for v in shown]
            if len(self.variables) > len(shown):
                lines.append(f"    ... and {len(self.variables) - len(shown)} more")
        for key, value in self.details.items():
            lines.append(f"  {key.replace('_', ' '):<13}: {value}")
        if self.metadata:
            lines.append(f"  metadata     : {_truncate(repr(self.metadata), 200)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class RoundtripReport:
    """The result of :func:`roundtrip`.

    Attributes
    ----------
    ok : bool
        True if every compared output agreed within the tolerances.
    max_abs_diff : float
        The largest absolute difference over all compared outputs.
    compared : dict
        Method name (``"predict"``, ``"predict_proba"``) → its largest absolute difference.
    format : str
        The format the object went through.
    size : int
        The saved file's size in bytes.
    """

    ok: bool
    max_abs_diff: float
    compared: dict[str, float]
    format: str
    size: int


def save(
    obj: Any,
    path: PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    compress: Any = None,
    overwrite: bool = True,
    key: bytes | str | None = None,
) -> Path:
    """Save ``obj`` atomically, with a manifest beside it.

    Parameters
    ----------
    obj : keras.Model, estimator, array or picklable object
        Keras models go to ``.keras``, or to ``.safetensors`` (faster for large
        models); everything else to ``.joblib``, or to ``.skops`` for
        scikit-learn objects that must load without pickle.
    path : str or os.PathLike
        The target file. Its suffix chooses the format.
    metadata : dict, optional
        JSON-serialisable facts to keep in the manifest (epoch, score, ...).
    compress : int, str or tuple, optional
        Passed to :func:`joblib.dump` for ``.joblib`` files; must be None for
        ``.keras`` and ``.safetensors``.
    overwrite : bool, default True
        If False and ``path`` exists, raise :class:`FileExistsError`.
    key : bytes or str, optional
        Sign the manifest with HMAC-SHA256 under this key (default: the
        ``NNSAVE_KEY`` environment variable, if set). Whoever loads with the
        same key knows the file came from a key holder and is unchanged.

    Returns
    -------
    pathlib.Path
        The path written. The manifest is the same name plus ``.nnsave.json``.

    Raises
    ------
    FormatError
        The suffix is unknown or does not fit the object.
    UnsupportedObjectError
        No format can hold the object.
    TypeError
        ``metadata`` is not JSON-serialisable.

    Notes
    -----
    The payload and the manifest are written to temporary files in the same
    directory, fsynced, then renamed into place. If anything fails first, the
    previous files under ``path`` are left intact and nothing else remains.

    Examples
    --------
    >>> import nnsave, numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> nnsave.save({"w": np.arange(3)}, folder / "arrays.joblib").name
    'arrays.joblib'
    >>> nnsave.load(folder / "arrays.joblib")["w"]
    array([0, 1, 2])
    """
    path = Path(path)
    handler = handler_for_path(path)
    signing_key = resolve_key(key)
    if not handler.claims(obj):
        owner = handler_for_object(obj)
        suggestion = path.with_suffix(owner.suffixes[0]).name
        raise FormatError(
            f"{path}: a {class_path(obj)} is saved as {owner.suffixes[0]}, not "
            f"{path.suffix}. Nothing was written; save it to {suggestion!r} instead."
        )
    user_metadata = check_metadata(metadata)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{path} is a directory; give a file name such as {path / ('model' + handler.suffixes[0])}", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"The directory {path.parent} does not exist; create it first", str(path.parent))
    if not overwrite and path.exists():
        raise FileExistsError(errno.EEXIST, f"{path} exists and overwrite=False; choose another name or pass overwrite=True", str(path))
    clean_directory(path.parent)
    with storage.atomic_write() as transaction:
        digest = handler.write(obj, transaction, path, compress=compress)
        manifest = build_manifest(
            format_name=handler.name,
            sha256=digest.sha256,
            size=digest.size,
            class_path=class_path(obj),
            metadata=user_metadata,
            nnsave_version=__version__,
        )
        if signing_key is not None:
            manifest = manifest.signed_with(signing_key)
        transaction.write_bytes(manifest_path(path), manifest.to_json().encode("utf-8"))
    return path


def load(
    path: PathLike,
    *,
    trusted: bool = False,
    verify: bool = True,
    safe_mode: bool = True,
    compile: bool = True,
    mmap_mode: str | None = None,
    key: bytes | str | None = None,
    expected_sha256: str | None = None,
    trusted_types: Sequence[str] = (),
) -> Any:
    """Verify a saved file against its manifest and load it.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.keras``, ``.safetensors``, ``.joblib`` or ``.skops`` file.
    trusted : bool, default False
        Vouch for a file whose loading can run code (joblib and pickle files,
        or Keras files with ``safe_mode=False``) when it has no manifest or is
        not verified. Pass True only for files you made yourself.
    verify : bool, default True
        Check the payload's size and sha256 against the manifest. For a file
        whose loading can run code (a pickle, or Keras with
        ``safe_mode=False``), and whenever ``key`` or ``expected_sha256`` is
        given, the check comes first; otherwise the hash is computed in a
        helper thread while the file loads, and an object whose file fails
        is discarded, never returned.
    safe_mode : bool, default True
        Keras's safe mode: refuse Lambda layers and other Python bytecode.
    compile : bool, default True
        Compile a Keras model after loading (restores the optimizer).
    mmap_mode : {None, 'r', 'r+', 'c'}
        Memory-map numpy arrays of an uncompressed joblib file.
    key : bytes or str, optional
        Require a manifest signed under this key (default: the ``NNSAVE_KEY``
        environment variable, if set); a missing or wrong signature raises
        :class:`UntrustedFileError` before anything is deserialised.
    expected_sha256 : str, optional
        Require the payload to have exactly this hash, for files shared by
        hash. A match vouches for the file even without a manifest.
    trusted_types : sequence of str, optional
        For ``.skops`` files: types outside skops's safe set that may be built
        (``nnsave.inspect`` lists them).

    Returns
    -------
    object
        The saved object.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        The path is missing, or a directory.
    IntegrityError
        The payload does not match its manifest, or the manifest is damaged.
    UntrustedFileError
        Loading could run code and nobody vouched for the file, or a key was
        given and the signature is missing or wrong.
    FormatError
        The suffix is unknown or the bytes are not of that format.

    Notes
    -----
    Hashing a large file takes about a second per 1.4 GB. The digest of an
    unchanged file of 64 MiB or more is remembered in a per-user cache
    (:mod:`nnsave.digest_cache`), keyed by its device, inode, size, mtime
    and ctime, so loading it again skips the hash. Any write to the file
    changes its ctime and forces a full hash; :func:`verify` always re-reads
    the bytes. ``NNSAVE_DIGEST_CACHE=0`` turns the cache off.

    The trust model: a manifest's hash proves the bytes are those nnsave wrote,
    not who wrote them; a signature proves they come from a key holder;
    ``expected_sha256`` pins one known file. None of them makes a malicious
    file written by a trusted party safe, and ``trusted=True`` switches the
    checks on code execution off: use it only for your own files.

    Warns
    -----
    VersionMismatchWarning
        The file was saved with library versions that matter and differ.
    UnverifiedFileWarning
        A ``.keras`` file without a manifest was loaded unverified.
    """
    path = _existing_file(path)
    handler = handler_for_path(path)
    signing_key = resolve_key(key)
    options = LoadOptions(safe_mode=safe_mode, compile=compile, mmap_mode=mmap_mode)
    # When the hash decides nothing about trust, it can run beside the read.
    if verify and signing_key is None and expected_sha256 is None and not handler.runs_code_on_load(options):
        loaded = _load_while_hashing(path, handler, options, trusted=trusted, trusted_types=trusted_types)
        if loaded is not None:
            return loaded[0]
    manifest = None
    verification = Verification.SKIPPED
    wants_manifest = verify or signing_key is not None
    if wants_manifest or expected_sha256 is not None:
        manifest, digest, problem = _checked_snapshot(path, handler, read_manifest=wants_manifest)
        if signing_key is not None:
            check_signature(path, manifest, signing_key)
        if problem:
            raise IntegrityError(_integrity_message(path, problem))
        if manifest is not None:
            verification = Verification.VERIFIED
        elif wants_manifest:
            verification = Verification.NO_MANIFEST
        if expected_sha256 is not None:
            if digest.sha256 != expected_sha256.strip().lower():
                raise IntegrityError(
                    f"{path} is not the file you expected: its sha256 is {digest.sha256}, "
                    f"expected_sha256 is {expected_sha256}. Do not use it; fetch the file again."
                )
            if verification is not Verification.VERIFIED:
                verification = Verification.PINNED
    handler.check_signature(path)
    options = authorize_load(
        path, handler, options, verification=verification, trusted=trusted, trusted_types=trusted_types
    )
    if verification is Verification.NO_MANIFEST:
        warnings.warn(
            f"{path} has no nnsave manifest, so it was loaded without an integrity "
            "check. Save it with nnsave.save to add one.",
            UnverifiedFileWarning,
            stacklevel=2,
        )
    if manifest is not None:
        _warn_on_version_mismatch(path, handler, manifest)
    return handler.read(path, options)


def _load_while_hashing(
    path: Path, handler: FormatHandler, options: LoadOptions, *, trusted: bool, trusted_types: Sequence[str]
) -> tuple[Any] | None:
    """Read a file whose loading runs no code while a helper thread hashes it.

    Only for formats where the hash authorises nothing (``.keras`` and
    ``.safetensors`` in safe mode, ``.skops``): the object is built from bytes not yet checked, and discarded if
    the hash then disagrees with the manifest. The shared directory lock is
    held throughout, so the bytes hashed are the bytes read. Returns None,
    having built nothing that escapes, when the careful order must decide:
    no manifest, a mismatch (a torn save to roll forward, or damage to
    report), or a read that failed on a file that does not verify.
    """
    with storage.directory_lock(path.parent, shared=True):
        manifest = _read_manifest(path)
        if manifest is None:
            return None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nnsave-verify") as hasher:
            hashing = hasher.submit(digest_cache.file_digest, path)
            try:
                handler.check_signature(path)
                approved = authorize_load(
                    path, handler, options, verification=Verification.SKIPPED, trusted=trusted,
                    trusted_types=trusted_types,
                )
                _warn_on_version_mismatch(path, handler, manifest, stacklevel=4)
                loaded = (handler.read(path, approved),)
            except Exception:
                if _mismatch(path, handler, manifest, hashing.result()) is None:
                    raise
                return None
            if _mismatch(path, handler, manifest, hashing.result()) is not None:
                return None
    return loaded


def inspect(path: PathLike) -> ArtifactInfo:
    """Describe a saved file without deserialising it.

    Nothing is unpickled and no model is built: the hash is compared with the
    manifest, and for ``.keras`` files the layers and parameter count are read
    from the archive's config and weights file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.keras`` or ``.joblib`` file, or a TensorFlow checkpoint prefix
        (``model.ckpt-95``, with ``.index`` and ``.data-*`` files beside it),
        whose variables are listed; that needs TensorFlow.

    Returns
    -------
    ArtifactInfo

    Examples
    --------
    >>> import nnsave, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "numbers.joblib"
    >>> info = nnsave.inspect(nnsave.save([1, 2, 3], target))
    >>> info.format, info.hash_status, info.class_path
    ('joblib', 'verified', 'builtins.list')
    """
    return _inspect(path, rehash=False)


def _inspect(path: PathLike, *, rehash: bool) -> ArtifactInfo:
    prefix = legacy.tf_checkpoint_prefix(path)
    if prefix is not None:
        return _inspect_tf_checkpoint(prefix)
    path = _existing_file(path)
    handler = handler_for_path(path)
    try:
        manifest, digest, problem = _checked_snapshot(path, handler, read_manifest=True, rehash=rehash)
    except IntegrityError as error:
        manifest, problem, digest = None, str(error), storage.hash_file(path)
        status = Verification.MISMATCH
    else:
        if manifest is None:
            status = Verification.NO_MANIFEST
        else:
            status = Verification.MISMATCH if problem else Verification.VERIFIED
    # The bytes of a mismatched file are not what was saved: report the
    # mismatch and leave them unparsed.
    details = {}
    if status is not Verification.MISMATCH:
        handler.check_signature(path)
        details = handler.describe(path)
    layers = details.pop("layers", None)
    parameter_count = details.pop("parameter_count", None)
    return ArtifactInfo(
        path=path,
        format=handler.name,
        size=digest.size,
        hash_status=status.value,
        sha256=digest.sha256,
        problem=problem,
        class_path=manifest.class_path if manifest else None,
        versions=dict(manifest.versions) if manifest else {},
        metadata=dict(manifest.metadata) if manifest else {},
        created_utc=manifest.created_utc if manifest else None,
        layers=layers,
        parameter_count=parameter_count,
        details={key: value for key, value in details.items() if value is not None},
    )


def _inspect_tf_checkpoint(prefix: Path) -> ArtifactInfo:
    facts = legacy.describe_tf_checkpoint(prefix)
    return ArtifactInfo(
        path=prefix,
        format="tf-checkpoint",
        size=facts["size"],
        hash_status=Verification.NO_MANIFEST.value,
        sha256="",
        problem="TensorFlow checkpoints carry no nnsave manifest",
        details={"kind": facts["kind"], "files": facts["files"]},
        variables=facts["variables"],
    )


def verify(path: PathLike) -> ArtifactInfo:
    """Like :func:`inspect`, but raise :class:`IntegrityError` unless the file verifies.

    A file without a manifest cannot be verified, so it raises too.
    """
    info = _inspect(path, rehash=True)
    if info.hash_status == Verification.NO_MANIFEST.value:
        raise IntegrityError(
            f"{info.path} has no manifest ({manifest_path(info.path).name}), so it "
            "cannot be verified. Save it with nnsave.save to write one."
        )
    if info.hash_status != Verification.VERIFIED.value:
        raise IntegrityError(_integrity_message(info.path, info.problem or "unknown"))
    return info


def roundtrip(obj: Any, X: Any, *, rtol: float = 0.0, atol: float = 0.0) -> RoundtripReport:
    """Save ``obj`` to a temporary file, load it back and compare its predictions.

    Parameters
    ----------
    obj : keras.Model or estimator
        Anything with ``predict``; ``predict_proba`` is compared too where present.
    X : array-like
        Inputs to predict on.
    rtol, atol : float, default 0.0
        Tolerances as in :func:`numpy.allclose`; the defaults demand equality.

    Returns
    -------
    RoundtripReport
    """
    if not callable(getattr(obj, "predict", None)):
        raise TypeError(f"roundtrip compares predictions, but a {class_path(obj)} has no predict method.")
    handler = handler_for_object(obj)
    methods = [m for m in ("predict", "predict_proba") if callable(getattr(obj, m, None))]
    with tempfile.TemporaryDirectory(prefix="nnsave-roundtrip-") as folder:
        path = save(obj, Path(folder) / f"roundtrip{handler.suffixes[0]}")
        size = path.stat().st_size
        restored = load(path)
        is_keras = handler.name == "keras"
        outputs = {
            method: (_predict(obj, method, X, is_keras), _predict(restored, method, X, is_keras))
            for method in methods
        }
    compared = {method: _largest_difference(*pair) for method, pair in outputs.items()}
    ok = all(_agree(*pair, rtol, atol) for pair in outputs.values())
    return RoundtripReport(ok=ok, max_abs_diff=max(compared.values()), compared=compared, format=handler.name, size=size)


def _predict(model: Any, method: str, X: Any, is_keras: bool) -> np.ndarray:
    function = getattr(model, method)
    return np.asarray(function(X, verbose=0) if is_keras else function(X))


def _largest_difference(before: np.ndarray, after: np.ndarray) -> float:
    if before.shape != after.shape:
        return float("inf")
    if before.dtype.kind not in "biuf" or after.dtype.kind not in "biuf":
        return 0.0 if np.array_equal(before, after) else float("inf")
    difference = np.abs(before.astype(np.float64) - after.astype(np.float64))
    return float(np.max(difference, initial=0.0))


def _agree(before: np.ndarray, after: np.ndarray, rtol: float, atol: float) -> bool:
    if before.shape != after.shape:
        return False
    if before.dtype.kind not in "biuf" or after.dtype.kind not in "biuf":
        return bool(np.array_equal(before, after))
    return bool(np.allclose(before, after, rtol=rtol, atol=atol, equal_nan=True))


def _existing_file(path: PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR,
            f"{path} is a directory, but a saved model file was expected. For a "
            "checkpoint directory use nnsave.latest_checkpoint(directory)",
            str(path),
        )
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, f"No such file: {path}. Check the path and the current directory", str(path))
    return path


def clean_directory(directory: PathLike) -> list[Path]:
    """Finish or discard what interrupted saves left in ``directory``.

    A save killed between its two renames leaves the new payload beside the
    old manifest, with the new manifest complete (fsynced) under its staging
    name: that save is rolled forward. Every other leftover staging file is
    removed. Files that a live process is still writing are left alone.
    Returns the staging files handled.
    """
    handled = []
    for staging, target in storage.stale_temporaries(Path(directory)):
        if target.name.endswith(MANIFEST_SUFFIX) and _completes_torn_save(staging, target):
            storage.publish(staging, target)
        else:
            storage.remove_temporary(staging)
        handled.append(staging)
    return handled


def _completes_torn_save(staged_manifest: Path, target: Path) -> bool:
    payload = target.with_name(target.name[: -len(MANIFEST_SUFFIX)])
    try:
        manifest = parse_manifest(storage.read_small_file(staged_manifest, MAX_MANIFEST_BYTES), source=staged_manifest)
        return payload.exists() and storage.hash_file(payload) == storage.Digest(manifest.sha256, manifest.size)
    except (IntegrityError, ValueError, OSError):
        return False


def _checked_snapshot(
    path: Path, handler: FormatHandler, *, read_manifest: bool, rehash: bool = False
) -> tuple[Manifest | None, storage.Digest, str | None]:
    """The manifest, the payload's digest, and any mismatch, read as one consistent pair.

    The shared directory lock keeps a concurrent save from renaming one file
    of the pair between the two reads. A mismatch may be a save that was
    killed between its renames, so the directory is cleaned and read again.
    The digest of an unchanged large file may come from the digest cache,
    unless ``rehash`` asks for the bytes to be read again.
    """
    manifest, digest, problem = _read_pair(path, handler, read_manifest=read_manifest, rehash=rehash)
    # A missing manifest may also be a first save killed between its renames.
    unfinished = problem is not None or (read_manifest and manifest is None)
    if unfinished and clean_directory(path.parent):
        manifest, digest, problem = _read_pair(path, handler, read_manifest=read_manifest, rehash=rehash)
    return manifest, digest, problem


def _read_pair(
    path: Path, handler: FormatHandler, *, read_manifest: bool, rehash: bool
) -> tuple[Manifest | None, storage.Digest, str | None]:
    with storage.directory_lock(path.parent, shared=True):
        manifest = _read_manifest(path) if read_manifest else None
        digest = digest_cache.file_digest(path, refresh=rehash)
    return manifest, digest, _mismatch(path, handler, manifest, digest) if manifest else None


def _read_manifest(path: Path) -> Manifest | None:
    location = manifest_path(path)
    if not location.exists():
        return None
    try:
        data = storage.read_small_file(location, MAX_MANIFEST_BYTES)
    except (ValueError, IsADirectoryError) as error:
        raise IntegrityError(
            f"The manifest {location} is damaged ({error}). Restore it, or re-save the model."
        ) from None
    return parse_manifest(data, source=location)


def _mismatch(
    path: Path, handler: FormatHandler, manifest: Manifest, digest: storage.Digest | None = None
) -> str | None:
    if manifest.format != handler.name:
        return f"the manifest describes a {manifest.format} file, but {path.name} is a {handler.name} file"
    size = digest.size if digest else path.stat().st_size
    if size != manifest.size:
        kind = "truncated" if size < manifest.size else "extended"
        return f"size is {size} bytes, expected {manifest.size} ({kind})"
    actual = (digest or storage.hash_file(path)).sha256
    if actual != manifest.sha256:
        return f"sha256 is {actual}, expected {manifest.sha256}"
    return None


def _integrity_message(path: Path, problem: str) -> str:
    return (
        f"{path} does not match its manifest {manifest_path(path).name}: {problem}. "
        "The file was changed or damaged after it was saved; do not use it. "
        "Restore it from a backup or save the model again."
    )


def _warn_on_version_mismatch(
    path: Path, handler: FormatHandler, manifest: Manifest, *, stacklevel: int = 3
) -> None:
    mismatches = version_mismatches(
        manifest.versions, installed_versions(), strictness=handler.strictness_for(manifest.class_path)
    )
    for name, saved, installed in mismatches:
        warnings.warn(
            f"{path} was saved with {name} {saved}, but {name} {installed} is installed. "
            f"Loading across these versions is not supported by {name}; if results look "
            f"wrong, install {name}=={saved} or re-train and save with {installed}.",
            VersionMismatchWarning,
            stacklevel=stacklevel,
        )


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."

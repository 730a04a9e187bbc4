"""The public verbs: save, load, inspect and verify.

Each verb checks its arguments, picks a format handler, and then lets the
other modules do their one job each: :mod:`nnsave.artifact` writes or checks
the payload and its manifest as one unit, :mod:`nnsave.trust` decides whether
the file may be deserialised, and the handler reads or writes the format.

Where the file lives does not change that order: a local path, a URL of an
object store (:mod:`nnsave.objectstore`), or a caller's binary file object,
whose manifest travels separately.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import artifact, keys, legacy, objectstore, trust
from ._version import __version__
from .errors import (
    DirectoryGivenError,
    FileMissingError,
    FormatError,
    IntegrityError,
    InvalidArgumentError,
    UnportableObjectWarning,
    UnverifiedFileWarning,
    VersionMismatchWarning,
    warn_caller,
)
from .formats import (
    FileFacts,
    FormatHandler,
    LoadOptions,
    SaveOptions,
    class_path,
    handler_for_object,
    handler_for_path,
    handler_named,
    registered_suffixes,
)
from .hashing import DEFAULT_ALGORITHM, is_hex_digest
from .manifest import Manifest, build_manifest, check_metadata, installed_versions, manifest_path, version_mismatches
from .objectstore import ObjectPath
from .paths import Location, PathLike, location
from .progress import Progress
from .report import ArtifactInfo

__all__ = ["save", "load", "inspect", "verify"]


def save(
    obj: Any,
    path: PathLike,
    *,
    metadata: Mapping[str, Any] | None = None,
    compress: Any = None,
    overwrite: bool = True,
    key: bytes | str | None = None,
    sha256: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    manifest: PathLike | None = None,
    progress: bool = False,
) -> Path | ObjectPath | Manifest:
    """Save ``obj`` atomically, with a signed manifest beside it.

    Parameters
    ----------
    obj : keras.Model, estimator, array or picklable object
        Keras models go to ``.keras``, or to ``.safetensors`` (faster for large
        models); everything else to ``.joblib``, or to ``.skops`` for
        scikit-learn objects that must load without pickle.
    path : str, bytes, os.PathLike, URL or binary file object
        The target file; ``~`` is expanded. Its suffix, in any letter case,
        chooses the format. A URL (``s3://bucket/run/m.keras``, ``gs://``,
        ``az://``, ``memory://``, ``file://``) saves to an object store by the
        protocol of :mod:`nnsave.objectstore`. A binary file object (open for
        writing) receives the payload; its manifest is returned, and written
        to ``manifest`` if given. The format is the file object's name's
        suffix, if it has one nnsave knows, else the object's usual one.
    metadata : dict, optional
        JSON-serialisable facts to keep in the manifest (epoch, score, ...);
        keys must be strings.
    compress : int, str or tuple, optional
        ``.joblib``: a level 0-9, a compressor name or a ``(name, level)``
        pair, as :func:`joblib.dump` takes. ``.skops``: a zip level 0-9.
        Other formats take none.
    overwrite : bool, default True
        If False and ``path`` exists, raise :class:`nnsave.TargetExistsError`.
    key : bytes or str, optional
        Sign the manifest with this key instead of your per-user key (the
        ``NNSAVE_KEY`` environment variable does the same). Share a key with
        the people whose files you load.
    sha256 : bool, default False
        Also record the payload's SHA-256 (for ``sha256sum`` and for pins);
        the BLAKE3 digest is always recorded.
    storage_options : dict, optional
        For a URL: options for fsspec (``{"endpoint_url": ...}``,
        ``{"anon": True}``, ...), as pandas takes them. Without them each
        store's environment variables apply (``AWS_ENDPOINT_URL``,
        ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` for S3).
    manifest : str, os.PathLike or URL, optional
        For a file object only: where to write its manifest as well.
    progress : bool, default False
        Show the bytes uploaded on standard error while a long upload runs.

    Returns
    -------
    pathlib.Path, ObjectPath or Manifest
        The path written (an :class:`~nnsave.objectstore.ObjectPath` for a
        URL, which prints as the URL); the manifest is the same name plus
        ``.nnsave.json``. For a file object, the signed manifest.

    Raises
    ------
    FormatError
        The suffix is unknown or does not fit the object.
    UnsupportedObjectError
        No format can hold the object, or this format cannot hold all of it.
    InvalidArgumentError
        ``metadata`` or ``compress`` cannot be used as given.
    MissingDependencyError
        The format needs a library that is not installed (the message names
        the extra to install).
    TargetExistsError, UnwritableError, FileMissingError, DirectoryGivenError
        The target exists and ``overwrite=False``; its directory cannot be
        written, or does not exist; or the path is a directory.

    Warns
    -----
    UnportableObjectWarning
        The object uses classes or functions from ``__main__``, which another
        process cannot import.

    Notes
    -----
    The payload and the manifest are written to temporary files in the same
    directory, fsynced, then renamed into place, under a lock that every
    nnsave writer of that directory takes. If anything fails first, the
    previous files under ``path`` are left intact and nothing else remains.
    On an object store the payload is uploaded uncommitted, hashed as it
    goes, and committed before its manifest is written; readers never load
    a mixed pair (:mod:`nnsave.objectstore` states the protocol per store).

    Examples
    --------
    >>> import nnsave, numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> nnsave.save({"w": np.arange(3)}, folder / "arrays.joblib").name
    'arrays.joblib'
    >>> nnsave.load(folder / "arrays.joblib")["w"]
    array([0, 1, 2])
    """
    stream = path if _is_file_object(path) else None
    if stream is None:
        target, handler = _path_target(path, storage_options, manifest)
    else:
        target, handler = _stream_target(stream, obj)
    if not handler.claims(obj):
        owner = handler_for_object(obj)
        raise FormatError(
            f"{target}: a {class_path(obj)} is saved as {owner.suffixes[0]}, not "
            f"{target.suffix}. Nothing was written; save it to "
            f"{target.with_suffix(owner.suffixes[0]).name!r} instead."
        )
    handler.require_modules(target, "Saving")
    options = SaveOptions(compress=compress)
    handler.check_save_options(target, options)
    user_metadata = check_metadata(metadata, target)
    if not isinstance(overwrite, bool):
        raise InvalidArgumentError(f"{target}: overwrite must be True or False, not {overwrite!r}.")
    if isinstance(target, Path) and stream is None and not target.parent.is_dir():
        raise FileMissingError(f"The directory {target.parent} does not exist; create it first.", str(target.parent))
    for message in handler.check_saveable(obj, target):
        warn_caller(message, UnportableObjectWarning)
    signing_key = keys.resolve_key(key, create=True)
    assert signing_key is not None  # created on demand

    def describe(digest: Any) -> Manifest:
        manifest = build_manifest(
            format_name=handler.name,
            digest=digest,
            class_path=handler.saved_class_path(obj),
            versions={**installed_versions(handler.versions(obj)), **handler.extra_versions(obj)},
            metadata=user_metadata,
            expects=handler.expects(obj),
            nnsave_version=__version__,
        )
        return keys.sign(manifest, signing_key)

    algorithms = (DEFAULT_ALGORITHM, "sha256") if sha256 else (DEFAULT_ALGORITHM,)
    with _progress(progress, f"uploading {target}" if stream is None else f"writing {target}") as report:
        if stream is not None:
            signed = describe(artifact.write_stream(stream, target, lambda pending: handler.write(obj, pending, target, options), algorithms, report))
            if manifest is not None:
                artifact.write_manifest(location(manifest, storage_options, argument="manifest"), signed)
            return signed
        artifact.write_pair(
            target,
            lambda pending: handler.write(obj, pending, target, options),
            describe,
            overwrite=overwrite,
            algorithms=algorithms,
            progress=report if isinstance(target, ObjectPath) else None,
        )
    return target


def load(
    path: PathLike,
    *,
    trusted: bool = False,
    trusted_types: Sequence[str] | None = (),
    safe_mode: bool = True,
    compile: bool = True,
    custom_objects: Mapping[str, Any] | None = None,
    mmap_mode: str | None = None,
    key: bytes | str | None = None,
    expected_sha256: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    manifest: Manifest | PathLike | None = None,
    progress: bool = False,
) -> Any:
    """Verify a saved file against its manifest and load it.

    The file is opened once; the bytes that are hashed are the bytes that
    are deserialised, and nothing is deserialised before the check.

    Parameters
    ----------
    path : str, bytes, os.PathLike, URL or binary file object
        A ``.keras``, ``.safetensors``, ``.joblib`` or ``.skops`` file. From
        a URL the object is downloaded while it is hashed (into memory, or
        a private temporary file when large), then loaded from those bytes.
        A binary file object is read to its end the same way, and checked
        against ``manifest`` or ``expected_sha256``.
    trusted : bool, default False
        Vouch for a file whose loading can run code when nothing else does.
        Pass True only for files whose author you trust.
    trusted_types : sequence of str, optional
        ``.skops`` files: types outside skops's safe set that may be built
        (:func:`inspect` lists them).
    safe_mode : bool, default True
        Keras: refuse configs that hold code (``Lambda``) or reach outside the
        file (``TFSMLayer``, vocabularies read from paths), whatever
        ``keras.config.enable_unsafe_deserialization()`` says. With False, the
        file can run code, so it must be vouched for.
    compile : bool, default True
        Keras: compile the model after loading (restores the optimizer).
    custom_objects : dict, optional
        Keras: classes and functions the config names, as in
        ``keras.saving.load_model``.
    mmap_mode : {None, 'r', 'r+', 'c'}
        ``.joblib``: memory-map the arrays of an uncompressed file.
    key : bytes or str, optional
        Accept only manifests signed with this key (default: ``NNSAVE_KEY`` if
        set). A valid signature vouches for the file.
    expected_sha256 : str, optional
        Require the payload to have exactly this SHA-256, for files shared by
        hash. A match vouches for the file, even without a manifest.
    storage_options : dict, optional
        For a URL (or a ``manifest`` URL): options for fsspec, as :func:`save` takes them.
    manifest : Manifest, str, os.PathLike or URL, optional
        For a file object only: the manifest :func:`save` returned, or where
        it was written. It also tells the format; without it, the file
        object's name must end in a suffix nnsave knows.
    progress : bool, default False
        Show the bytes downloaded or hashed on standard error while a long
        load runs.

    Returns
    -------
    object
        The saved object.

    Raises
    ------
    FileMissingError, DirectoryGivenError, NotAFileError
        The path is missing, a directory, or not a regular file.
    IntegrityError
        The payload does not match its manifest or ``expected_sha256``, or the
        manifest is damaged. ``error.problem`` says how.
    UntrustedFileError
        Loading could run code or reach outside the file, and nobody vouched
        for it; or a key was named and the signature is missing or wrong.
    FormatError, UnknownClassError
        The bytes are not of that format, or name a class this process does
        not know.
    InvalidArgumentError
        An argument does not apply to this format.

    Warns
    -----
    VersionMismatchWarning
        The file was saved with library versions that matter and differ.
    UnverifiedFileWarning
        A file without a manifest was loaded unverified.

    Notes
    -----
    What each check proves: the manifest's digest, that these are the bytes
    that were saved; its signature, that a holder of your key saved them;
    ``expected_sha256``, that this is the very file you were told about.
    None of them makes a file safe whose author meant harm.

    A digest of an unchanged file of 64 MiB or more, owned by you, is
    remembered in a private per-user cache keyed by the open file's device,
    inode, size, mtime and ctime (:mod:`nnsave.digest_cache`);
    ``NNSAVE_DIGEST_CACHE=0`` turns it off, and :func:`verify` always hashes.
    """
    stream = path if _is_file_object(path) else None
    sidecar: Manifest | None = None
    if stream is None:
        target, handler = _path_target(path, storage_options, manifest)
    else:
        if manifest is not None and not isinstance(manifest, Manifest):
            sidecar = artifact.read_manifest(location(manifest, storage_options, argument="manifest"))
        else:
            sidecar = manifest
        target, handler = _stream_source(stream, sidecar)
    approved = _types(trusted_types, target)
    options = LoadOptions(safe_mode=safe_mode, compile=compile, custom_objects=custom_objects, mmap_mode=mmap_mode)
    for name, value in (("trusted", trusted), ("safe_mode", safe_mode), ("compile", compile)):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{target}: {name} must be True or False, not {value!r}.")
    handler.check_load_options(target, options, approved)
    pin = _pin(expected_sha256, target)
    signing_key = keys.resolve_key(key, create=False)
    request = trust.Request(
        trusted=trusted,
        trusted_types=approved,
        safe_mode=safe_mode,
        key_named=signing_key is not None and signing_key.named_by_caller,
        memory_map=mmap_mode is not None,
    )
    handler.require_modules(target, "Loading")
    extra = ("sha256",) if pin else ()
    with contextlib.ExitStack() as stack:
        report = stack.enter_context(_progress(progress, f"reading {target}"))
        if stream is not None:
            opened = artifact.checked_stream(stream, target, sidecar, format_name=handler.name, extra_algorithms=extra, progress=report)
        else:
            opened = artifact.checked_pair(target, format_name=handler.name, extra_algorithms=extra, progress=report)
        check = stack.enter_context(opened)
        return _load_checked(check, handler, target, options, request, signing_key, pin, expected_sha256)


def _load_checked(
    check: artifact.PairCheck,
    handler: FormatHandler,
    target: Location,
    options: LoadOptions,
    request: trust.Request,
    signing_key: keys.SigningKey | None,
    pin: str | None,
    expected_sha256: str | None,
) -> Any:
    """Ask trust about a checked file, then deserialise its verified bytes, or refuse."""
    evidence = trust.Evidence(
        integrity=check.integrity,
        signature=keys.check_signature(check.manifest, signing_key),
        pin=_pin_status(pin, check.digest.sha256),
        others_can_write=check.others_can_write,
        problem=check.problem,
    )
    facts = FileFacts(runs_code=True)  # unread bytes of a mismatched file are assumed the worst
    if check.integrity is not trust.Integrity.MISMATCH and evidence.pin is not trust.PinStatus.MISMATCH:
        handler.check_magic(check.handle.head(16), target)
        facts = handler.facts(check.payload(), options)
    decision = trust.decide(facts, evidence, request)
    if not decision.allowed:
        detail = check.detail or ""
        if decision.reason is trust.Reason.PIN_MISMATCH:
            detail = f"its SHA-256 is {check.digest.sha256}, expected_sha256 is {expected_sha256}"
        raise trust.refusal(target, decision, facts, evidence, request, signing_key, detail=detail)
    if decision.unverified:
        warn_caller(
            f"{target} has no nnsave manifest, so it was loaded without an integrity "
            "check. Save it with nnsave.save to add one.",
            UnverifiedFileWarning,
        )
    if check.manifest is not None:
        _warn_on_version_mismatch(target, handler, check.manifest)
    return handler.read(check.payload(), replace(options, approved_types=decision.approved_types))


def inspect(
    path: PathLike, *, storage_options: Mapping[str, Any] | None = None, progress: bool = False
) -> ArtifactInfo:
    """Describe a saved file without deserialising it.

    Nothing is unpickled and no model is built: the payload is compared with
    its manifest, the signature is checked against your key, and for Keras
    files the layers and parameter count are read from the archive.

    Parameters
    ----------
    path : str, bytes, os.PathLike or URL
        A saved file, or a TensorFlow checkpoint prefix (``model.ckpt-95``,
        with ``.index`` and ``.data-*`` files beside it), whose variables are
        listed; that needs TensorFlow. A URL's object is downloaded while it
        is hashed.
    storage_options : dict, optional
        For a URL: options for fsspec, as :func:`save` takes them.
    progress : bool, default False
        Show the bytes downloaded or hashed on standard error.

    Returns
    -------
    ArtifactInfo

    Examples
    --------
    >>> import nnsave, tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "numbers.joblib"
    >>> info = nnsave.inspect(nnsave.save([1, 2, 3], target))
    >>> info.format, info.integrity.value, info.class_path
    ('joblib', 'intact', 'builtins.list')
    """
    return _inspect(path, rehash=False, storage_options=storage_options, progress=progress)


def verify(
    path: PathLike, *, storage_options: Mapping[str, Any] | None = None, progress: bool = False
) -> ArtifactInfo:
    """Like :func:`inspect`, but hash every byte and raise unless the file matches its manifest.

    ``storage_options`` and ``progress`` are as for :func:`inspect`.

    Raises
    ------
    IntegrityError
        The file does not match its manifest, the manifest is damaged, or
        there is no manifest to verify against.
    """
    info = _inspect(path, rehash=True, storage_options=storage_options, progress=progress)
    if info.integrity is trust.Integrity.NO_MANIFEST:
        raise IntegrityError(
            f"{info.path} has no manifest ({manifest_path(info.path).name}), so it "
            "cannot be verified. Save it with nnsave.save to write one."
        )
    if info.integrity is not trust.Integrity.INTACT:
        raise IntegrityError(info.problem or f"{info.path} does not match its manifest.")
    return info


def _inspect(
    path: PathLike, *, rehash: bool, storage_options: Mapping[str, Any] | None, progress: bool
) -> ArtifactInfo:
    target = _file_path(path, storage_options)
    prefix = legacy.tf_checkpoint_prefix(target) if isinstance(target, Path) else None
    if prefix is not None:
        return _inspect_tf_checkpoint(prefix)
    handler = handler_for_path(target)
    signing_key = keys.resolve_key(None, create=False)
    action = "reading" if isinstance(target, ObjectPath) else "hashing"
    with _progress(progress, f"{action} {target}") as report, artifact.checked_pair(
        target, format_name=handler.name, rehash=rehash, progress=report
    ) as check:
        manifest = check.manifest
        details: dict[str, Any] = {}
        # The bytes of a mismatched file are not what was saved: report the
        # mismatch and leave them unparsed.
        if check.integrity is not trust.Integrity.MISMATCH:
            handler.check_magic(check.handle.head(16), target)
            details = handler.describe(check.payload())
        return ArtifactInfo(
            path=target,
            format=handler.name,
            size=check.digest.size,
            integrity=check.integrity,
            signature=keys.check_signature(manifest, signing_key),
            digests=dict(check.digest.values),
            problem=check.detail,
            class_path=manifest.class_path if manifest else None,
            versions=dict(manifest.versions) if manifest else {},
            expects=dict(manifest.expects) if manifest else {},
            metadata=dict(manifest.metadata) if manifest else {},
            created_utc=manifest.created_utc if manifest else None,
            layers=details.pop("layers", None),
            parameter_count=details.pop("parameter_count", None),
            details={name: value for name, value in details.items() if value is not None},
        )


def _inspect_tf_checkpoint(prefix: Path) -> ArtifactInfo:
    facts = legacy.describe_tf_checkpoint(prefix)
    return ArtifactInfo(
        path=prefix,
        format="tf-checkpoint",
        size=facts["size"],
        integrity=trust.Integrity.NO_MANIFEST,
        problem="TensorFlow checkpoints carry no nnsave manifest",
        details={"kind": facts["kind"], "files": facts["files"]},
        variables=facts["variables"],
    )


def _is_file_object(path: Any) -> bool:
    return hasattr(path, "read") or hasattr(path, "write")


def _path_target(path: Any, storage_options: Mapping[str, Any] | None, manifest: Any) -> tuple[Location, FormatHandler]:
    """A path or URL to save to or load from, and the format its suffix names."""
    if manifest is not None:
        raise InvalidArgumentError(
            "manifest= applies to file objects only; the manifest of a saved file "
            "always sits beside it."
        )
    target = _file_path(path, storage_options)
    return target, handler_for_path(target)


def _stream_target(stream: Any, obj: Any) -> tuple[Path, FormatHandler]:
    """What a file object is called in messages, and the format ``obj`` is written in."""
    named = _named_suffix(stream)
    handler = handler_for_path(named) if named is not None else handler_for_object(obj)
    return named or Path(f"<{type(stream).__name__}>{handler.suffixes[0]}"), handler


def _stream_source(stream: Any, sidecar: Manifest | None) -> tuple[Path, FormatHandler]:
    """What a file object to load is called in messages, and its format (from the manifest if given)."""
    named = _named_suffix(stream)
    if sidecar is not None:
        handler = handler_named(sidecar.format)
    else:
        handler = handler_for_path(named) if named is not None else None
    if handler is None:
        raise InvalidArgumentError(
            f"Cannot tell the format of the {type(stream).__name__} to load: pass manifest= "
            f"(what nnsave.save returned), or a file object whose name ends in one of "
            f"{', '.join(registered_suffixes())}."
        )
    return named or Path(f"<{type(stream).__name__}>{handler.suffixes[0]}"), handler


def _named_suffix(stream: Any) -> Path | None:
    """The file object's own name, if it is a path whose suffix nnsave knows."""
    name = getattr(stream, "name", None)
    if isinstance(name, str) and Path(name).suffix.lower() in registered_suffixes():
        return Path(name)
    return None


@contextlib.contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int], None] | None]:
    if not isinstance(enabled, bool):
        raise InvalidArgumentError(f"progress must be True or False, not {enabled!r}.")
    if not enabled:
        yield None
        return
    report = Progress(label)
    try:
        yield report
    finally:
        report.close()


def _file_path(path: Any, storage_options: Mapping[str, Any] | None = None) -> Location:
    """The caller's path or URL, refused at once if a local one names a directory (``.`` included)."""
    target = location(path, storage_options)
    if isinstance(target, ObjectPath):
        return target
    if target.is_dir():
        raise DirectoryGivenError(
            f"{target} is a directory, but a file was expected: give the file's path, "
            f"such as {target / 'model.keras'}. For a checkpoint directory, use "
            "nnsave.latest_checkpoint(directory) or `nnsave ls`.",
            str(target),
        )
    return target


def _types(trusted_types: Any, target: Path) -> tuple[str, ...]:
    if trusted_types is None:
        return ()
    if isinstance(trusted_types, (str, bytes)) or not isinstance(trusted_types, (list, tuple, set, frozenset)) or not all(
        isinstance(t, str) for t in trusted_types
    ):
        raise InvalidArgumentError(
            f"{target}: trusted_types must be a list of type names such as "
            f"['numpy.float64'], not {trusted_types!r}."
        )
    return tuple(trusted_types)


def _pin(expected_sha256: Any, target: Path) -> str | None:
    if expected_sha256 is None:
        return None
    pin = expected_sha256.strip().lower() if isinstance(expected_sha256, str) else None
    if not is_hex_digest(pin):
        raise InvalidArgumentError(
            f"{target}: expected_sha256 must be 64 hex digits (what sha256sum prints), "
            f"not {expected_sha256!r}."
        )
    return pin


def _pin_status(pin: str | None, actual: str | None) -> trust.PinStatus:
    if pin is None:
        return trust.PinStatus.NONE
    return trust.PinStatus.MATCH if actual == pin else trust.PinStatus.MISMATCH


def _warn_on_version_mismatch(path: Path, handler: FormatHandler, manifest: Manifest) -> None:
    mismatches = version_mismatches(
        manifest.versions,
        installed_versions(list(manifest.versions)),
        strictness=handler.strictness_for(manifest.class_path),
    )
    for name, saved, installed in mismatches:
        warn_caller(
            f"{path} was saved with {name} {saved}, but {name} {installed} is installed. "
            f"Loading across these versions is not supported by {name}; if results look "
            f"wrong, install {name}=={saved} or re-train and save with {installed}.",
            VersionMismatchWarning,
        )

"""Keras models as native ``.keras`` archives.

A ``.keras`` file is a zip holding ``config.json`` (the architecture),
``metadata.json`` (the Keras version) and ``model.weights.h5`` (weights and
optimizer state), plus ``assets/`` for layers such as ``StringLookup``.
nnsave writes it with Keras's own writer, so Keras opens it without nnsave,
and reads the config and the weights' shapes straight from the zip for
:func:`nnsave.inspect`, without building the model.
"""

from __future__ import annotations

import contextlib
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import parsing
from ..errors import FormatError, MissingDependencyError
from ..hashing import Digest
from ..storage import Transaction
from ._base import FileFacts, LoadOptions, Payload, SaveOptions
from ._keras import KerasModelHandler, keras_errors_explained, keras_module, layers_from_config, safe_mode_scope
from ._keras_state import ModelSnapshot, keras_state_walk, record_state
from ._zip import check_zip_magic, measure, open_zip

__all__ = ["KerasHandler", "CONFIG_MEMBER", "METADATA_MEMBER", "WEIGHTS_MEMBER"]

CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"
#: Where the archive keeps files that layers save beside their weights (vocabularies).
_ASSETS_FOLDER = "assets"

_MAX_JSON_MEMBER_BYTES = 64 << 20
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
# Groups in model.weights.h5 that hold training state rather than the model's own variables.
_NON_MODEL_GROUPS = {"optimizer"}
# Where Keras keeps the variables of a model's optimizer.
_OPTIMIZER_VARIABLES = "optimizer/vars"
# What h5py raises for bytes that are not a readable HDF5 file.
_H5_ERRORS = (OSError, RuntimeError, ValueError, KeyError, TypeError, struct.error)


class KerasHandler(KerasModelHandler):
    name = "keras"
    suffixes = (".keras",)
    required_modules = ("keras", "h5py")

    def versions(self, obj: object) -> list[str]:
        return [*super().versions(obj), "h5py"]

    def write(self, obj: Any, transaction: Transaction, target: Path, options: SaveOptions) -> Digest:
        if isinstance(obj, ModelSnapshot):
            with transaction.stream(target) as stream:
                _write_snapshot(obj, stream, _snapshot_parts(target))
            return stream.digest
        save_to_stream = _stream_writer()
        if save_to_stream is None:
            keras_module().saving.save_model(obj, transaction.staging_path(target))
            return transaction.digest_of(target)
        with transaction.stream(target) as stream:
            save_to_stream(obj, stream)
        return stream.digest

    def check_magic(self, head: bytes, path: Path) -> None:
        check_zip_magic(
            head,
            path,
            "a Keras archive",
            "If it is a joblib or pickle file, rename it to .joblib; if it is a legacy "
            "HDF5 model, load it with Keras directly.",
        )

    def facts(self, payload: Payload, options: LoadOptions) -> FileFacts:
        with open_zip(payload, required_member=CONFIG_MEMBER, kind="Keras model") as archive:
            expansion, hostile = measure(archive, payload.size)
            if hostile:
                return FileFacts(runs_code=not options.safe_mode, hostile_names=hostile, expansion=expansion)
            config = _json_member(archive, CONFIG_MEMBER, payload.path)
        return self.config_facts(config, payload.path, options, expansion=expansion)

    def snapshot(self, model: Any, target: Path) -> ModelSnapshot:
        parts = _snapshot_parts(target)
        config_json, metadata_json = parts.serialize(model)
        state = record_state(model, keras_state_walk(target, "Saving"))
        return ModelSnapshot(
            self.name,
            self.saved_class_path(model),
            self.expects(model),
            self.check_saveable(model, target),
            (config_json, metadata_json),
            state,
        )

    def check_saveable(self, obj: Any, target: Path) -> list[str]:
        if isinstance(obj, ModelSnapshot):
            return list(obj.warnings)
        optimizer = getattr(obj, "optimizer", None)
        compiled_with = (obj.get_compile_config() or {}).get("optimizer") if optimizer is not None else None
        if not _is_loss_scale_optimizer(optimizer) or _names_loss_scale_optimizer(compiled_with):
            return []
        return [
            f"{target}: compile() wrapped the model's optimizer in a LossScaleOptimizer "
            "for mixed precision, and a .keras file does not record that, so a process "
            "whose dtype policy is not mixed_float16 cannot restore the optimizer state "
            "(nnsave.load then says so). Save it as .safetensors to keep that state, or "
            "call keras.config.set_dtype_policy('mixed_float16') before loading."
        ]

    def read(self, payload: Payload, options: LoadOptions) -> Any:
        load_from_stream = _stream_loader()
        with keras_errors_explained(payload.path), safe_mode_scope(options.safe_mode):
            if load_from_stream is not None:
                model = load_from_stream(
                    payload.reader(),
                    custom_objects=options.custom_objects,
                    compile=options.compile,
                    safe_mode=options.safe_mode,
                )
            else:
                model = _load_from_private_copy(payload, options)
        if options.compile:
            _check_optimizer_restored(model, payload)
        return model

    def describe(self, payload: Payload) -> dict[str, Any]:
        with open_zip(payload, required_member=CONFIG_MEMBER, kind="Keras model") as archive:
            config = _json_member(archive, CONFIG_MEMBER, payload.path)
            keras_metadata = _json_member(archive, METADATA_MEMBER, payload.path)
            parameter_count = _count_parameters(archive, payload)
        return {
            "model_class": config.get("class_name"),
            "layers": layers_from_config(config),
            "parameter_count": parameter_count,
            "keras_version": keras_metadata.get("keras_version"),
        }


def _stream_writer() -> Callable[[Any, BinaryIO], None] | None:
    """Keras's own ``.keras`` writer in the form that accepts a stream, if present.

    ``keras.saving.save_model`` takes only a path, which means hashing the
    finished file in a second pass. The function behind it,
    ``saving_lib.save_model``, also takes a binary stream, so nnsave hands
    it the hashing writer and the archive is hashed as Keras produces it.
    It lives in ``keras.src``; should a Keras release move it, nnsave falls
    back to the public API.
    """
    try:
        from keras.src.saving.saving_lib import save_model
    except ImportError:
        return None
    return save_model


@dataclass(frozen=True)
class _SnapshotParts:
    """The pieces of Keras's ``.keras`` writer that a snapshot is written with."""

    #: ``model -> (config.json, metadata.json)`` as text.
    serialize: Callable[[Any], tuple[str, str]]
    #: Keras's HDF5 weights store and its asset store, each writing into a zip.
    weights_store: type
    assets_store: type


def _snapshot_parts(target: Path) -> _SnapshotParts:
    """Keras's own ``.keras`` writer in pieces, so that a snapshot writes the file Keras would.

    They live in ``keras.src``; should a Keras release move them, a model
    cannot be snapshotted for ``.keras`` (save it synchronously instead).
    """
    try:
        from keras.src.saving.saving_lib import DiskIOStore, H5IOStore, _serialize_model_as_json
    except ImportError:
        version = getattr(keras_module(), "__version__", "unknown")
        raise MissingDependencyError(
            f"Snapshotting a model for {target} needs Keras's .keras writer in pieces "
            f"(keras.src.saving.saving_lib), which Keras {version} does not have. Save "
            'it synchronously, or install the Keras version nnsave was tested with: pip install "nnsave[keras]"'
        ) from None
    return _SnapshotParts(_serialize_model_as_json, H5IOStore, DiskIOStore)


def _write_snapshot(snapshot: ModelSnapshot, stream: BinaryIO, parts: _SnapshotParts) -> None:
    """The ``.keras`` archive of a snapshot, member by member as Keras writes a model's.

    Keras's ``saving_lib._save_model_to_fileobj``, for a model whose weights
    fit in memory: the metadata, the config, the HDF5 weights written through
    Keras's own store, then the asset files.
    """
    config_json, metadata_json = snapshot.header
    with zipfile.ZipFile(stream, "w") as archive:
        with archive.open(METADATA_MEMBER, "w") as member:
            member.write(metadata_json.encode())
        with archive.open(CONFIG_MEMBER, "w") as member:
            member.write(config_json.encode())
        weights = parts.weights_store(WEIGHTS_MEMBER, archive=archive, mode="w")
        assets = parts.assets_store(_ASSETS_FOLDER, archive=archive, mode="w")
        try:
            snapshot.state.save_state(weights, assets)
        finally:
            weights.close()
            assets.close()


def _stream_loader() -> Callable[..., Any] | None:
    """Keras's own ``.keras`` reader in the form that accepts a stream, if present.

    The public ``keras.saving.load_model`` takes only a path, and opening the
    path again would read whatever is there now, not the bytes that were
    verified. ``saving_lib.load_model`` takes a stream; if a Keras release
    moves it, nnsave loads from a private copy of the verified bytes instead.
    """
    try:
        from keras.src.saving.saving_lib import load_model
    except ImportError:
        return None
    return load_model


def _load_from_private_copy(payload: Payload, options: LoadOptions) -> Any:
    import keras

    with tempfile.TemporaryDirectory(prefix="nnsave-load-") as folder:  # mode 0700
        copy = Path(folder) / "model.keras"
        copy.write_bytes(payload.view)
        return keras.saving.load_model(
            copy, custom_objects=options.custom_objects, compile=options.compile, safe_mode=options.safe_mode
        )


def _is_loss_scale_optimizer(optimizer: Any) -> bool:
    keras = keras_module()
    return optimizer is not None and isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def _names_loss_scale_optimizer(serialized: Any) -> bool:
    return isinstance(serialized, dict) and serialized.get("class_name") == "LossScaleOptimizer"


def _check_optimizer_restored(model: Any, payload: Payload) -> None:
    """Raise if the file's optimizer had taken steps and Keras could not restore them.

    Keras skips an optimizer whose variables do not match the file's in
    number, with only a warning; training would then restart its moments
    and step count without anyone noticing.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return
    with open_zip(payload, required_member=CONFIG_MEMBER, kind="Keras model") as archive:
        saved = _saved_optimizer(archive, payload)
    if saved is None:
        return
    saved_count, saved_steps = saved
    if saved_steps and saved_count != len(optimizer.variables):
        raise FormatError(
            f"{payload.path}: Keras rebuilt the model but not its optimizer state: the "
            f"file's optimizer had taken {saved_steps} steps and has {saved_count} "
            f"variables; the one rebuilt from the config has {len(optimizer.variables)}. A "
            "mixed-precision model does this where the dtype policy is not mixed_float16: "
            "call keras.config.set_dtype_policy('mixed_float16') before loading. Or load "
            "with compile=False for the model alone; .safetensors files keep this state."
        )


def _json_member(archive: zipfile.ZipFile, member: str, path: Path) -> dict[str, Any]:
    if member not in archive.namelist():
        return {}

    def damaged(reason: str) -> FormatError:
        return FormatError(f"{path}: its {member} is damaged ({reason}). Restore the file or save it again.")

    info = archive.getinfo(member)
    if info.file_size > _MAX_JSON_MEMBER_BYTES:
        raise damaged(f"implausibly large: {info.file_size} bytes")
    try:
        data = archive.read(member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as error:
        raise damaged(str(error)) from None
    document = parsing.load_json(data, damaged)
    if not isinstance(document, dict):
        raise damaged("not a JSON object")
    return document


class _MemberWindow:
    """A read-only, seekable view of one stored (uncompressed) zip member."""

    def __init__(self, view: memoryview, start: int, length: int) -> None:
        self._view = view[start : start + length]
        self._position = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position, 2: len(self._view)}[whence]
        self._position = max(0, min(len(self._view), base + offset))
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._position + size)
        data = bytes(self._view[self._position : end])
        self._position = end
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextlib.contextmanager
def _weights_file(archive: zipfile.ZipFile, payload: Payload) -> Iterator[Any | None]:
    """The archive's HDF5 weights, opened in place; None where that cannot be done.

    A stored member is read straight from the verified bytes; a compressed
    one (Keras never writes one) or a missing h5py yields None.
    """
    if WEIGHTS_MEMBER not in archive.namelist():
        yield None
        return
    info = archive.getinfo(WEIGHTS_MEMBER)
    try:
        import h5py
    except ImportError:
        yield None  # inspecting needs no extra; only reading the weights does
        return
    if info.compress_type != zipfile.ZIP_STORED:
        yield None
        return
    try:
        start = info.header_offset
        header = _LOCAL_HEADER.unpack(payload.view[start : start + _LOCAL_HEADER.size])
        name_length, extra_length = header[-2], header[-1]
        data_start = start + _LOCAL_HEADER.size + name_length + extra_length
        window = _MemberWindow(payload.view, data_start, info.file_size)
        with h5py.File(window, "r") as weights, contextlib.suppress(RecursionError):
            yield weights
    except _H5_ERRORS as error:
        raise FormatError(
            f"{payload.path}: {WEIGHTS_MEMBER} is not a readable HDF5 file ({error}). "
            "Restore the file or save the model again."
        ) from None


def _count_parameters(archive: zipfile.ZipFile, payload: Payload) -> int | None:
    """Sum the sizes of the model's variables in the weights file, without loading them."""
    if WEIGHTS_MEMBER not in archive.namelist():
        return 0
    total = 0

    def visit(name: str, node: Any) -> None:
        nonlocal total
        if hasattr(node, "dtype") and name.split("/")[0] not in _NON_MODEL_GROUPS:  # a dataset
            total += int(node.size)

    with _weights_file(archive, payload) as weights:
        if weights is None:
            return None
        weights.visititems(visit)
    return total


def _saved_optimizer(archive: zipfile.ZipFile, payload: Payload) -> tuple[int, int] | None:
    """How many variables the file's optimizer has, and how many steps it took.

    The steps are the largest integer scalar among its variables: its own
    step counter, or that of the optimizer it wraps.
    """
    with _weights_file(archive, payload) as weights:
        group = weights.get(_OPTIMIZER_VARIABLES) if weights is not None else None
        if group is None or not hasattr(group, "values"):
            return None
        variables = list(group.values())
        counters = [int(v[()]) for v in variables if getattr(v, "shape", None) == () and v.dtype.kind in "iu"]
        return len(variables), max(counters, default=0)

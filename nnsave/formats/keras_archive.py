"""Keras models as native ``.keras`` archives.

A ``.keras`` file is a zip holding ``config.json`` (the architecture),
``metadata.json`` (the Keras version) and ``model.weights.h5`` (weights and
optimizer state). nnsave writes it with Keras's own writer, so Keras can
open it without nnsave, and reads the config and the weights' shapes straight
from the zip for :func:`nnsave.inspect`, without building the model.
"""

from __future__ import annotations

import contextlib
import json
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import FormatError, UntrustedFileError
from ..storage import AtomicWrite, Digest
from . import FormatHandler, LoadOptions, keras_module
from .zip_audit import open_audited_zip, require_zip

__all__ = [
    "refuse_compression",
    "KerasHandler",
    "CONFIG_MEMBER",
    "METADATA_MEMBER",
    "WEIGHTS_MEMBER",
    "code_refused",
    "explained_keras_errors",
    "holds_python_code",
    "layers_from_config",
]

CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"

_MAX_JSON_MEMBER_BYTES = 64 << 20
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
# Config entries whose deserialisation runs Python bytecode stored in the file.
_CODE_CLASS_NAMES = {"Lambda", "__lambda__"}
# Groups in model.weights.h5 that hold training state rather than the model's own variables.
_NON_MODEL_GROUPS = {"optimizer"}


class KerasHandler(FormatHandler):
    name = "keras"
    suffixes = (".keras",)
    version_strictness = {"keras": 1}

    def claims(self, obj: object) -> bool:
        keras = keras_module()
        return keras is not None and isinstance(obj, keras.Model)

    def write(
        self, obj: Any, transaction: AtomicWrite, target: Path, *, compress: Any
    ) -> Digest:
        refuse_compression(target, compress)
        save_to_stream = _stream_writer()
        if save_to_stream is None:
            keras_module().saving.save_model(obj, transaction.staging_path(target))
            return transaction.digest_of(target)
        with transaction.stream(target) as stream:
            save_to_stream(obj, stream)
        return stream.digest

    def check_signature(self, path: Path) -> None:
        require_zip(
            path,
            "a Keras archive",
            "If it is a joblib or pickle file, rename it to .joblib; if it is a legacy "
            "HDF5 model, load it with Keras directly.",
        )

    def runs_code_on_load(self, options: LoadOptions) -> bool:
        # In safe mode Keras refuses to deserialise Python bytecode (Lambda layers).
        return not options.safe_mode

    def read(self, path: Path, options: LoadOptions) -> Any:
        with open_audited_zip(path, required_member=CONFIG_MEMBER, kind="Keras model", suffix=".keras") as archive:
            config = _read_json_member(archive, CONFIG_MEMBER, path)
        # Checked here as well as by Keras, because keras.config.
        # enable_unsafe_deserialization() anywhere in the process overrides
        # Keras's own safe_mode=True; nnsave honours no global switch.
        if options.safe_mode and holds_python_code(config):
            raise code_refused(path)
        import keras

        try:
            with explained_keras_errors(path):
                return keras.saving.load_model(
                    path, compile=options.compile, safe_mode=options.safe_mode
                )
        except zipfile.BadZipFile as error:
            raise FormatError(f"{path} is a damaged .keras archive ({error}). Restore or re-save it.") from None

    def describe(self, path: Path) -> dict[str, Any]:
        with open_audited_zip(path, required_member=CONFIG_MEMBER, kind="Keras model", suffix=".keras") as archive:
            config = _read_json_member(archive, CONFIG_MEMBER, path)
            keras_metadata = _read_json_member(archive, METADATA_MEMBER, path)
            parameter_count = _count_parameters(archive, path)
        return {
            "model_class": config.get("class_name"),
            "layers": layers_from_config(config),
            "parameter_count": parameter_count,
            "keras_version": keras_metadata.get("keras_version"),
        }


def refuse_compression(target: Path, compress: Any) -> None:
    """Raise ``ValueError`` unless ``compress`` is None: Keras files are stored as written."""
    if compress is not None:
        raise ValueError(
            f"{target}: compress applies to .joblib files only; a {target.suffix} file "
            "is stored as it is written. Leave compress=None."
        )


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


def code_refused(path: Path) -> UntrustedFileError:
    return UntrustedFileError(
        f"{path} holds Python code (a Lambda layer or similar) that Keras "
        "refuses to run in safe mode. Pass safe_mode=False together with "
        "trusted=True only if you made this file yourself."
    )


@contextlib.contextmanager
def explained_keras_errors(path: Path) -> Iterator[None]:
    """Turn Keras's errors about code in safe mode and unregistered classes into nnsave's."""
    try:
        yield
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise code_refused(path) from error
        raise
    except TypeError as error:
        if "register_keras_serializable" in str(error) or "Could not locate" in str(error):
            raise FormatError(
                f"{path} uses a custom class that is not registered in this "
                "process. Import the module that defines it, decorated with "
                "@keras.saving.register_keras_serializable(), then load again. "
                f"Keras said: {error}"
            ) from error
        raise


def holds_python_code(node: Any) -> bool:
    """True if a Keras config names a Lambda layer or a serialised Python function."""
    if isinstance(node, dict):
        if node.get("class_name") in _CODE_CLASS_NAMES:
            return True
        return any(holds_python_code(value) for value in node.values())
    if isinstance(node, list):
        return any(holds_python_code(value) for value in node)
    return False


def _read_json_member(archive: zipfile.ZipFile, member: str, path: Path) -> dict[str, Any]:
    if member not in archive.namelist():
        return {}
    info = archive.getinfo(member)
    if info.file_size > _MAX_JSON_MEMBER_BYTES:
        raise FormatError(f"{path}: {member} is implausibly large ({info.file_size} bytes).")
    try:
        document = json.loads(archive.read(member))
    except (ValueError, zipfile.BadZipFile) as error:
        raise FormatError(f"{path}: {member} cannot be read as JSON ({error}).") from None
    if not isinstance(document, dict):
        raise FormatError(f"{path}: {member} is not a JSON object.")
    return document


def layers_from_config(config: dict[str, Any]) -> list[dict[str, str]]:
    """Names and types of the top-level layers of a Sequential or functional model.

    A subclassed model's config does not list its layers, so the list is empty.
    """
    layers = config.get("config", {}).get("layers", [])
    if not isinstance(layers, list):
        return []
    described = []
    for layer in layers:
        if isinstance(layer, dict):
            layer_config = layer.get("config", {})
            name = layer_config.get("name") if isinstance(layer_config, dict) else None
            described.append({"name": str(name), "type": str(layer.get("class_name"))})
    return described


class _MemberWindow:
    """A read-only, seekable view of one stored (uncompressed) zip member."""

    def __init__(self, handle: BinaryIO, start: int, length: int) -> None:
        self._handle, self._start, self._length, self._position = handle, start, length, 0

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._position, 2: self._length}[whence]
        self._position = max(0, min(self._length, base + offset))
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        remaining = self._length - self._position
        size = remaining if size is None or size < 0 else min(size, remaining)
        self._handle.seek(self._start + self._position)
        data = self._handle.read(size)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _count_parameters(archive: zipfile.ZipFile, path: Path) -> int | None:
    """Sum the sizes of the model's variables in the weights file, without loading them."""
    if WEIGHTS_MEMBER not in archive.namelist():
        return 0
    info = archive.getinfo(WEIGHTS_MEMBER)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    import h5py

    handle = archive.fp
    handle.seek(info.header_offset)
    header = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    name_length, extra_length = header[-2], header[-1]
    data_start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    window = _MemberWindow(handle, data_start, info.file_size)
    total = 0

    def visit(name: str, node: Any) -> None:
        nonlocal total
        if isinstance(node, h5py.Dataset) and name.split("/")[0] not in _NON_MODEL_GROUPS:
            total += int(node.size)

    try:
        with h5py.File(window, "r") as weights:
            weights.visititems(visit)
    except (OSError, RuntimeError, ValueError, KeyError) as error:  # h5py's view of damaged bytes
        raise FormatError(f"{path}: {WEIGHTS_MEMBER} is not a readable HDF5 file ({error}).") from None
    return total

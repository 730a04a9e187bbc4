"""Keras models as one ``.safetensors`` file: the config in the header, the state after it.

The file is a standard safetensors file, so any safetensors reader opens the
arrays (``safetensors.numpy.load_file``):

- 8 bytes: the header's length, little-endian;
- the header: JSON, padded with spaces to a multiple of 8 bytes. Each tensor
  has an entry ``{"dtype", "shape", "data_offsets"}``; the ``__metadata__``
  entry holds nnsave's marker, the Keras version, and Keras's own
  serialisation of the model (which includes its compile config);
- the tensors' raw bytes, little-endian and in C order, back to back.

What is stored is exactly what Keras stores in a ``.keras`` file's weights:
nnsave walks the model with Keras's own walk (the one behind
``model.save``), so every layer, optimizer and metric saves and loads its
state through its own ``save_own_variables`` and ``load_own_variables``.
Custom state, optimizer state (a mixed-precision ``LossScaleOptimizer``
included) and quantized layers round-trip as they do in ``.keras``. A
tensor's name is where the walk found it and the key its owner gave it:
``layers/dense_1/0`` is the first value the second ``Dense`` layer stored,
``optimizer/3`` the optimizer's fourth. State kept in files
(``save_assets``: a lookup layer's vocabulary) has no place here; such models
are refused at save time with a pointer to ``.keras``.

Why this route is faster than ``.keras`` for large models: saving streams each
value straight into nnsave's hashing writer, where Keras first builds a whole
HDF5 file and then copies it into a zip; loading builds the layers with zero
initializers (cheap) instead of running their random initializers only to
overwrite the result, then reads each tensor once from the verified bytes.
"""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import parsing
from ..errors import FormatError, UnsupportedObjectError
from ..hashing import Digest
from ..storage import Transaction
from ._base import FileFacts, LoadOptions, Payload, SaveOptions
from ._keras import KerasModelHandler, keras_errors_explained, keras_module, layers_from_config, safe_mode_scope
from ._keras_state import Group, LiveState, ModelSnapshot, StateSource, host_copy, keras_state_walk, record_state

__all__ = [
    "KerasSafetensorsHandler",
    "FORMAT_KEY",
    "FORMAT_VALUE",
    "FORMAT_VERSION_KEY",
    "FORMAT_VERSION",
    "KERAS_VERSION_KEY",
    "CONFIG_KEY",
    "OPTIMIZER_PREFIX",
    "MAX_HEADER_BYTES",
    "safetensors_header",
]

#: Keys of the header's ``__metadata__`` map (every value is a string).
FORMAT_KEY = "nnsave.format"
FORMAT_VALUE = "keras-model"
FORMAT_VERSION_KEY = "nnsave.format_version"
#: Version 1 stored ``model.weights`` by position and skipped custom state.
FORMAT_VERSION = "2"
KERAS_VERSION_KEY = "nnsave.keras_version"
CONFIG_KEY = "nnsave.keras_config"
#: Keras's walk reaches a model's optimizer through its ``optimizer`` attribute.
OPTIMIZER_PREFIX = "optimizer/"
#: The safetensors library refuses larger headers too.
MAX_HEADER_BYTES = 100_000_000
_MAX_CONFIG_BYTES = 64 << 20
_LENGTH = struct.Struct("<Q")

#: Keras dtype name → safetensors dtype code.
_DTYPE_CODES = {
    "bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16",
    "uint32": "U32", "int32": "I32", "uint64": "U64", "int64": "I64",
    "float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}
_DTYPE_NAMES = {code: name for name, code in _DTYPE_CODES.items()}
_ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2")
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str  # Keras/numpy dtype name
    shape: tuple[int, ...]
    begin: int  # offset from the start of the data section
    end: int

    @property
    def group(self) -> str:
        """The walk's path of the tensor's owner (``""`` for the model itself)."""
        return self.name.rpartition("/")[0]

    @property
    def key(self) -> str:
        return self.name.rpartition("/")[2]


@dataclass(frozen=True)
class _Layout:
    """A parsed, checked header: where everything is, nothing read yet."""

    metadata: dict[str, str]
    config: dict[str, Any]
    tensors: list[_Tensor]
    data_start: int

    @property
    def model_tensors(self) -> list[_Tensor]:
        return [t for t in self.tensors if not t.name.startswith(OPTIMIZER_PREFIX)]

    @property
    def optimizer_tensors(self) -> list[_Tensor]:
        return [t for t in self.tensors if t.name.startswith(OPTIMIZER_PREFIX)]


class KerasSafetensorsHandler(KerasModelHandler):
    """The same objects, trust rules and version checks as ``.keras``; another file layout."""

    name = "keras-safetensors"
    suffixes = (".safetensors",)

    def write(self, obj: Any, transaction: Transaction, target: Path, options: SaveOptions) -> Digest:
        walk = keras_state_walk(target, "Saving")
        state: StateSource
        if isinstance(obj, ModelSnapshot):
            metadata, state = obj.header, obj.state
        else:
            metadata = _metadata_for(obj, target, keras_module())
            state = LiveState(obj, walk, tuple(_unbuilt_optimizer(obj)))
        # Two passes over the state: the first learns the header, which
        # precedes the data; the second streams each value as its owner hands
        # it over, so memory grows by the largest value, not by the model.
        layout = walk.weights_store(_StateLayout, target)
        state.save_state(layout, walk.assets_store(_AssetRefusal, target, layout.owners))
        with transaction.stream(target) as stream:
            stream.write(safetensors_header(layout.entries, metadata))
            writer = walk.weights_store(_StateWriter, stream, layout.entries, target)
            state.save_state(writer, None)
            writer.finish()
        return stream.digest

    def snapshot(self, model: Any, target: Path) -> ModelSnapshot:
        """The model's state and config now, in host memory, ready to be written later.

        Raises the errors a save would (a model with asset files, a config
        that is not JSON) here, on the caller's thread.
        """
        walk = keras_state_walk(target, "Saving")
        metadata = _metadata_for(model, target, keras_module())
        state = record_state(
            model,
            walk,
            skipped=tuple(_unbuilt_optimizer(model)),
            assets=lambda owners: walk.assets_store(_AssetRefusal, target, owners),
        )
        return ModelSnapshot(
            self.name, self.saved_class_path(model), self.expects(model), self.check_saveable(model, target), metadata, state
        )

    def check_magic(self, head: bytes, path: Path) -> None:
        length = _LENGTH.unpack(head[:8])[0] if len(head) >= 8 else None
        if length is None or not 2 <= length <= MAX_HEADER_BYTES or head[8:9] != b"{":
            raise FormatError(
                f"{path} is not a safetensors file: it does not start with an 8-byte "
                "header length followed by a JSON header. If it is a .keras archive or a "
                "joblib file, give it that suffix; if it was cut short, restore it."
            )

    def facts(self, payload: Payload, options: LoadOptions) -> FileFacts:
        return self.config_facts(_read_layout(payload).config, payload.path, options)

    def read(self, payload: Payload, options: LoadOptions) -> Any:
        path = payload.path
        layout = _read_layout(payload)
        walk = keras_state_walk(path, "Loading")
        config = dict(layout.config)
        if not options.compile:
            config["compile_config"] = None
        with keras_errors_explained(path), safe_mode_scope(options.safe_mode):
            model = _build(config, options)
        optimizer = getattr(model, "optimizer", None) if options.compile else None
        if layout.optimizer_tensors and options.compile and optimizer is None:
            raise FormatError(
                f"{path} holds optimizer state but its config has no compile config. "
                "Load it with compile=False to get the model without that state."
            )
        # An optimizer that had taken no step was not saved; the rebuilt one
        # starts from scratch, as it would have.
        skipped = [optimizer] if optimizer is not None and not layout.optimizer_tensors else []
        source = walk.weights_store(_TensorSource, payload.view, layout)
        with keras_errors_explained(path):
            failures = walk.load(model, source, skipped)
        if failures:
            owner, error = next(iter(failures.values()))
            raise FormatError(
                f"{path}: the state of {_owner_words(owner)} does not fit the model built "
                f"from its config ({type(error).__name__}: {error}). The file is damaged "
                "or was changed; restore it or save the model again."
            )
        unread = [name for name in source.unread() if optimizer is not None or not name.startswith(OPTIMIZER_PREFIX)]
        if unread:
            raise FormatError(
                f"{path} holds {len(unread)} tensor(s) that the model built from its config "
                f"did not take ({', '.join(unread[:3])}), so loading would lose them. The "
                "file is damaged or was changed; restore it or save the model again."
            )
        return model

    def describe(self, payload: Payload) -> dict[str, Any]:
        layout = _read_layout(payload)
        return {
            "model_class": layout.config.get("class_name"),
            "layers": layers_from_config(layout.config),
            "parameter_count": sum(int(np.prod(t.shape, dtype=np.int64)) for t in layout.model_tensors),
            "keras_version": layout.metadata.get(KERAS_VERSION_KEY),
        }


def safetensors_header(tensors: list[tuple[str, str, tuple[int, ...]]], metadata: dict[str, str] | None = None) -> bytes:
    """The length prefix and JSON header for tensors stored back to back in this order.

    ``tensors`` holds ``(name, dtype name, shape)``. The header is padded with
    spaces to a multiple of 8 bytes, as the safetensors writer does.

    >>> blob = safetensors_header([("w", "float32", (2, 3))], {"note": "hi"})
    >>> struct.unpack("<Q", blob[:8])[0] == len(blob) - 8, len(blob) % 8
    (True, 0)
    >>> header = json.loads(blob[8:])
    >>> header["w"], header["__metadata__"]
    ({'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}, {'note': 'hi'})
    """
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in tensors:
        if name in header:
            raise ValueError(f"two tensors are named {name!r}")
        size = int(np.prod(shape, dtype=np.int64)) * _numpy_dtype(dtype).itemsize
        header[name] = {"dtype": _DTYPE_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(len(text) + _LENGTH.size) % 8)
    return _LENGTH.pack(len(text)) + text


# --- stores of nnsave's own for Keras's walk -----------------------------------

class _StateLayout:
    """The first walk: the name, dtype and shape of every value, in order."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.entries: list[tuple[str, str, tuple[int, ...]]] = []
        self.owners: dict[str, str] = {}

    def make(self, path: str, metadata: dict[str, Any] | None = None) -> Group:
        if metadata and isinstance(metadata.get("name"), str):
            self.owners[path] = metadata["name"]
        return Group(path, self._record)

    def close(self) -> None:
        """Nothing to release; Keras's stores have this method."""

    def _record(self, path: str, key: str, value: Any) -> None:
        name = _tensor_name(path, key, self.target)
        if any(entry[0] == name for entry in self.entries):
            raise UnsupportedObjectError(
                f"{self.target}: two values would be stored as {name!r}. Save the model as .keras."
            )
        self.entries.append((name, *_dtype_and_shape(value, name, self.target)))


class _AssetRefusal:
    """Stands where Keras expects an asset store: no owner of files gets past it."""

    def __init__(self, target: Path, owners: Mapping[str, str]) -> None:
        self._target = target
        self._owners = owners

    def make(self, path: str) -> str:
        owner = self._owners.get(path)
        named = f"the layer {owner!r} (at {path})" if owner else f"the object at {path or 'the top'}"
        raise UnsupportedObjectError(
            f"{self._target}: {named} keeps state in files of its own (save_assets: a "
            "vocabulary, say), which a safetensors file has no place for. Save the "
            "model as .keras."
        )

    def close(self) -> None:
        """Nothing to release; Keras's stores have this method."""


class _StateWriter:
    """The second walk: each value's bytes, checked against the header already written."""

    def __init__(self, stream: BinaryIO, entries: list[tuple[str, str, tuple[int, ...]]], target: Path) -> None:
        self._stream = stream
        self._pending = iter(entries)
        self._target = target

    def make(self, path: str, metadata: dict[str, Any] | None = None) -> Group:
        return Group(path, self._write)

    def close(self) -> None:
        """Nothing to release; Keras's stores have this method."""

    def _write(self, path: str, key: str, value: Any) -> None:
        # An array is written as it is: it is copied to the file at once.
        array = np.asarray(value if isinstance(value, np.ndarray) else host_copy(value), order="C")
        found = (_tensor_name(path, key, self._target), keras_module().backend.standardize_dtype(array.dtype), array.shape)
        if next(self._pending, None) != found:
            self._changed(found[0])
        # One value at a time: memory grows by the largest value, not the model.
        self._stream.write(_bytes_of(array))

    def finish(self) -> None:
        missing = next(self._pending, None)
        if missing is not None:
            self._changed(missing[0])

    def _changed(self, name: str) -> None:
        raise UnsupportedObjectError(
            f"{self._target}: the model's state changed while it was saved (at {name!r}): "
            "a layer stored different values on two calls of save_own_variables. Save "
            "it as .keras, or make that method store the same values each time."
        )


class _TensorSource:
    """Where Keras's walk finds each owner's values: the verified bytes, copied one by one."""

    def __init__(self, view: memoryview, layout: _Layout) -> None:
        self._view = view
        self._data_start = layout.data_start
        self._groups: dict[str, dict[str, _Tensor]] = {}
        for tensor in layout.tensors:
            self._groups.setdefault(tensor.group, {})[tensor.key] = tensor
        self._unread = {tensor.name for tensor in layout.tensors}

    def get(self, path: str) -> Mapping[str, np.ndarray]:
        return _StoredGroup(self, self._groups.get(path, {}))

    def has_path(self, path: str) -> bool:
        # Keras asks this only to recognise files older than its own layout of
        # nested containers; every group a model asks for is looked up in get().
        return True

    def close(self) -> None:
        """Nothing to release; Keras's stores have this method."""

    def unread(self) -> list[str]:
        return sorted(self._unread)

    def array(self, tensor: _Tensor) -> np.ndarray:
        self._unread.discard(tensor.name)
        begin, end = self._data_start + tensor.begin, self._data_start + tensor.end
        # A copy: the backend may keep the array it is given, and the verified
        # bytes are released when the load ends.
        return np.frombuffer(self._view[begin:end], dtype=_numpy_dtype(tensor.dtype)).reshape(tensor.shape).copy()


class _StoredGroup(Mapping):
    """One owner's values, read from the file when asked for."""

    def __init__(self, source: _TensorSource, tensors: dict[str, _Tensor]) -> None:
        self._source = source
        self._tensors = tensors

    def __getitem__(self, key: str) -> np.ndarray:
        return self._source.array(self._tensors[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def _owner_words(owner: Any) -> str:
    name = getattr(owner, "name", None)
    kind = type(owner).__name__
    return f"{name!r} ({kind})" if isinstance(name, str) else f"a {kind}"


# --- saving -----------------------------------------------------------------

def _metadata_for(model: Any, target: Path, keras: Any) -> dict[str, str]:
    try:
        config = keras.saving.serialize_keras_object(model)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and config.get("compile_config"):
            # Record the optimizer the model trains with. compile() may have
            # wrapped the one it was given (mixed precision wraps it in a
            # LossScaleOptimizer), and the compile config names only the
            # original, so a process with another dtype policy would rebuild an
            # optimizer of another shape.
            config["compile_config"]["optimizer"] = keras.saving.serialize_keras_object(optimizer)
        text = json.dumps(config)
    except (TypeError, ValueError, NotImplementedError) as error:
        raise UnsupportedObjectError(
            f"{target}: the model's config cannot be written as JSON ({error}). Give "
            "custom layers and optimizers a get_config(), or save the model as .keras."
        ) from None
    if _optimizer_state(model) is not None and not model.get_compile_config():
        raise UnsupportedObjectError(
            f"{target}: the model has optimizer state but no compile config to rebuild "
            "its optimizer from (its compile() is custom). Save it as .keras, or "
            "define get_compile_config() and compile_from_config()."
        )
    return {
        FORMAT_KEY: FORMAT_VALUE,
        FORMAT_VERSION_KEY: FORMAT_VERSION,
        KERAS_VERSION_KEY: keras.__version__,
        CONFIG_KEY: text,
    }


def _optimizer_state(model: Any) -> Any | None:
    """The model's optimizer, if it has taken a step or was built to."""
    optimizer = getattr(model, "optimizer", None)
    return optimizer if optimizer is not None and optimizer.built else None


def _unbuilt_optimizer(model: Any) -> list[Any]:
    """An optimizer that holds nothing worth saving; loading builds it afresh."""
    optimizer = getattr(model, "optimizer", None)
    return [optimizer] if optimizer is not None and not optimizer.built else []


def _tensor_name(path: str, key: Any, target: Path) -> str:
    """``layers/dense_1/0``: the owner's path in Keras's walk, then its own key."""
    if not isinstance(key, str) or not key or "/" in key:
        raise UnsupportedObjectError(
            f"{target}: the object at {path or 'the top'} stores a value under the key "
            f"{key!r}; nnsave's .safetensors layout needs keys that are non-empty "
            "strings without '/'. Save the model as .keras."
        )
    return f"{path}/{key}" if path else key


def _dtype_and_shape(value: Any, name: str, target: Path) -> tuple[str, tuple[int, ...]]:
    """The dtype and shape of a stored value, read without copying its data."""
    keras = keras_module()
    if not (hasattr(value, "dtype") and hasattr(value, "shape")):
        value = np.asarray(value)
    try:
        dtype = keras.backend.standardize_dtype(value.dtype)
    except ValueError:
        dtype = str(value.dtype)
    if dtype not in _DTYPE_CODES:
        raise UnsupportedObjectError(
            f"{target}: the value {name} has dtype {dtype}, which nnsave does not store "
            "in safetensors. Save the model as .keras."
        )
    return dtype, tuple(int(size) for size in value.shape)


def _bytes_of(array: np.ndarray) -> memoryview:
    """A flat byte view of a C-contiguous array (bfloat16 and 0-d arrays included), no copy."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _numpy_dtype(name: str) -> np.dtype:
    if name in _ML_DTYPES:
        import ml_dtypes  # installed with TensorFlow and JAX

        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


# --- reading the header -----------------------------------------------------

def _read_layout(payload: Payload) -> _Layout:
    """Parse and check the header: bounds, metadata, dtypes, shapes and offsets."""
    path, size = payload.path, payload.size
    prefix = payload.head(_LENGTH.size)
    length = _LENGTH.unpack(prefix)[0] if len(prefix) == _LENGTH.size else None
    if length is None or length > MAX_HEADER_BYTES or length > size - _LENGTH.size:
        raise FormatError(
            f"{path}: its header length ({length}) does not fit a file of {size} "
            "bytes; the file is damaged or not safetensors. Restore it or save again."
        )
    header = _parse_json(bytes(payload.view[_LENGTH.size : _LENGTH.size + length]), path, "header")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or metadata.get(FORMAT_KEY) != FORMAT_VALUE:
        raise FormatError(
            f"{path} is a safetensors file without nnsave's Keras model metadata, so it "
            "holds tensors but no model to build. Open it with "
            "safetensors.numpy.load_file() to get its arrays, or save a Keras model "
            "with nnsave.save(model, 'model.safetensors')."
        )
    if metadata.get(FORMAT_VERSION_KEY) != FORMAT_VERSION:
        raise FormatError(
            f"{path} uses version {metadata.get(FORMAT_VERSION_KEY)!r} of nnsave's Keras "
            f"safetensors layout; this nnsave reads version {FORMAT_VERSION} only. Load "
            "it with the nnsave release that wrote it (a newer one, if the file is "
            "newer) and save it again, or save the model as .keras."
        )
    config_text = metadata.get(CONFIG_KEY)
    if not isinstance(config_text, str) or len(config_text) > _MAX_CONFIG_BYTES:
        raise FormatError(f"{path}: the model config in its metadata is missing or implausibly large.")
    config = _parse_json(config_text.encode("utf-8"), path, "model config")
    tensors = sorted((_tensor_entry(path, name, entry) for name, entry in header.items()),
                     key=lambda t: (t.begin, t.end, t.name))
    data_start = _LENGTH.size + length
    _check_contiguous(path, tensors, size - data_start)
    return _Layout(metadata, config, tensors, data_start)


def _parse_json(data: bytes, path: Path, what: str) -> dict[str, Any]:
    def damaged(reason: str) -> FormatError:
        return FormatError(f"{path}: its {what} is damaged ({reason}). Restore the file or save it again.")

    document = parsing.load_json(data, damaged)
    if not isinstance(document, dict):
        raise damaged("not a JSON object")
    return document


def _tensor_entry(path: Path, name: str, entry: Any) -> _Tensor:
    def bad(reason: str) -> FormatError:
        return FormatError(f"{path}: the header entry of tensor {name!r} {reason}. The file is damaged.")

    if not isinstance(entry, dict):
        raise bad("is not a JSON object")
    if not name.rpartition("/")[2]:
        raise bad("has no key after its owner's path")
    dtype = _DTYPE_NAMES.get(entry.get("dtype"))
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if dtype is None:
        raise bad(f"has an unknown dtype {entry.get('dtype')!r}")
    if not _is_int_list(shape) or not _is_int_list(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise bad("has an invalid shape or data_offsets")
    expected = int(np.prod(shape, dtype=np.int64)) * _numpy_dtype(dtype).itemsize
    if offsets[1] - offsets[0] != expected:
        raise bad(f"spans {offsets[1] - offsets[0]} bytes, but its shape and dtype need {expected}")
    return _Tensor(name, dtype, tuple(shape), offsets[0], offsets[1])


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(type(item) is int and item >= 0 for item in value)


def _check_contiguous(path: Path, tensors: list[_Tensor], data_size: int) -> None:
    position = 0
    for tensor in tensors:
        if tensor.begin != position:
            kind = "overlaps the one before it" if tensor.begin < position else "leaves a gap before it"
            raise FormatError(f"{path}: tensor {tensor.name!r} {kind}. The file is damaged.")
        position = tensor.end
    if position != data_size:
        kind = "is truncated" if position > data_size else "has bytes after its last tensor"
        raise FormatError(
            f"{path} {kind}: its header describes {position} bytes of tensors, and "
            f"{data_size} follow the header. Restore the file or save the model again."
        )


# --- building the model and filling it --------------------------------------

def _build(config: dict[str, Any], options: LoadOptions) -> Any:
    """The model from its config, built with zero initializers, then given its own back."""
    import keras

    def build(from_config: dict[str, Any]) -> Any:
        return keras.saving.deserialize_keras_object(
            from_config, custom_objects=options.custom_objects, safe_mode=options.safe_mode
        )

    model = build(_with_zero_initializers(config))
    _restore_initializers(model, config)
    if _initializers(keras.saving.serialize_keras_object(model)) != _initializers(config):
        # A layer kept its initializer somewhere this module cannot reach:
        # build again the ordinary way, so that get_config() stays true.
        model = build(config)
    return model


def _direct_layers(config: Any) -> list[dict[str, Any]]:
    """The layer entries listed in a Sequential or functional model's config."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    return [
        layer for layer in (layers if isinstance(layers, list) else [])
        if isinstance(layer, dict) and isinstance(layer.get("config"), dict)
    ]


def _listed_layers(config: Any) -> Iterator[dict[str, Any]]:
    """Each layer entry of a Sequential or functional model's config, nested models' too."""
    for layer in _direct_layers(config):
        yield layer
        yield from _listed_layers(layer)


def _initializers(config: Any) -> list[tuple[Any, str, Any]]:
    return [
        (layer["config"].get("name"), key, value)
        for layer in _listed_layers(config)
        for key, value in layer["config"].items()
        if key.endswith("_initializer") and isinstance(value, dict)
    ]


def _with_zero_initializers(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` whose listed layers initialize every variable to zero (cheap)."""
    config = copy.deepcopy(config)
    for layer in _listed_layers(config):
        for key, value in layer["config"].items():
            if key.endswith("_initializer") and isinstance(value, dict):
                layer["config"][key] = dict(_ZEROS)
    return config


def _restore_initializers(container: Any, config: dict[str, Any]) -> None:
    """Give the layers of ``container`` (and of models nested in it) their configured initializers."""
    import keras

    entries = {str(layer["config"].get("name")): layer for layer in _direct_layers(config)}
    for layer in getattr(container, "layers", []):
        entry = entries.get(layer.name, {"config": {}})
        for key, value in entry["config"].items():
            if key.endswith("_initializer") and isinstance(value, dict):
                # Recurrent layers keep their initializers on their cell.
                owner = layer.cell if hasattr(layer, "cell") else layer
                if hasattr(owner, key):
                    setattr(owner, key, keras.initializers.get(value))
        _restore_initializers(layer, entry)

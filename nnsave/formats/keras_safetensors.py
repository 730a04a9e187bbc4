"""Keras models as one ``.safetensors`` file: the config in the header, the weights after it.

The file is a standard safetensors file, so any safetensors reader opens the
weights (``safetensors.numpy.load_file``):

- 8 bytes: the header's length, little-endian;
- the header: JSON, padded with spaces to a multiple of 8 bytes. Each tensor
  has an entry ``{"dtype", "shape", "data_offsets"}``; the ``__metadata__``
  entry holds nnsave's marker, the Keras version, and Keras's own
  serialisation of the model (which includes its compile config);
- the tensors' raw bytes, little-endian and in C order, back to back.

Tensor names carry their position: ``00003/dense_1/bias`` is the fourth entry
of ``model.weights``, and ``optimizer/00000/adam/iteration`` the first
optimizer variable. Loading matches tensors by position and checks each
shape and dtype, as Keras's own weights file does.

Why this route is faster than ``.keras`` for large models: saving streams each
variable straight into nnsave's hashing writer, where Keras first builds a
whole HDF5 file and then copies it into a zip; loading builds the layers with
zero initializers (cheap) instead of running their random initializers only
to overwrite the result, then reads each tensor once, straight into a buffer.
"""

from __future__ import annotations

import copy
import json
import os
import struct
from collections.abc import Iterator
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
FORMAT_VERSION = "1"
KERAS_VERSION_KEY = "nnsave.keras_version"
CONFIG_KEY = "nnsave.keras_config"
#: Names of optimizer tensors start with this; the model's own start with a digit.
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
}
_DTYPE_NAMES = {code: name for name, code in _DTYPE_CODES.items()}
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str  # Keras/numpy dtype name
    shape: tuple[int, ...]
    begin: int  # offset from the start of the data section
    end: int


@dataclass(frozen=True)
class _Layout:
    """A parsed, checked header: where everything is, nothing read yet."""

    metadata: dict[str, str]
    config: dict[str, Any]
    model_tensors: list[_Tensor]
    optimizer_tensors: list[_Tensor]
    data_start: int


class KerasSafetensorsHandler(KerasModelHandler):
    """The same objects, trust rules and version checks as ``.keras``; another file layout."""

    name = "keras-safetensors"
    suffixes = (".safetensors",)

    def write(self, obj: Any, transaction: Transaction, target: Path, options: SaveOptions) -> Digest:
        keras = keras_module()
        metadata = _metadata_for(obj, target, keras)
        variables = [(_tensor_name(i, v, obj), v) for i, v in enumerate(obj.weights)]
        optimizer = getattr(obj, "optimizer", None)
        if optimizer is not None and optimizer.built:
            variables += [(f"{OPTIMIZER_PREFIX}{i:05d}/{v.path}", v) for i, v in enumerate(optimizer.variables)]
        entries = [(name, _dtype_of(v, target, keras), tuple(v.shape)) for name, v in variables]
        with transaction.stream(target) as stream:
            stream.write(safetensors_header(entries, metadata))
            for _, variable in variables:
                # One variable at a time: memory grows by the largest variable, not the model.
                stream.write(_bytes_of(np.ascontiguousarray(keras.ops.convert_to_numpy(variable))))
        return stream.digest

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
        config = dict(layout.config)
        if not options.compile:
            config["compile_config"] = None
        with keras_errors_explained(path), safe_mode_scope(options.safe_mode):
            model = _build(config, options)
        plan = list(zip(layout.model_tensors, _matched(path, layout.model_tensors, model.weights, "model")))
        if layout.optimizer_tensors and options.compile:
            optimizer = getattr(model, "optimizer", None)
            if optimizer is None:
                raise FormatError(
                    f"{path} holds optimizer state but its config has no compile config. "
                    "Load it with compile=False to get the model without that state."
                )
            variables = _matched(path, layout.optimizer_tensors, optimizer.variables, "optimizer")
            plan += list(zip(layout.optimizer_tensors, variables))
        _assign(payload.view, layout.data_start, plan)
        for layer in _all_layers(model):
            # What Keras's own loader does after a layer's variables are in place:
            # Normalization, say, derives its mean and variance tensors from them.
            if callable(getattr(layer, "finalize_state", None)):
                layer.finalize_state()
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


# --- saving -----------------------------------------------------------------

def _metadata_for(model: Any, target: Path, keras: Any) -> dict[str, str]:
    for layer in _all_layers(model):
        if callable(getattr(layer, "save_assets", None)):
            raise UnsupportedObjectError(
                f"{target}: the layer {layer.name!r} ({type(layer).__name__}) keeps state "
                "outside its variables (a vocabulary, say), which a safetensors file has "
                "no place for. Save the model as .keras."
            )
    try:
        config = json.dumps(keras.saving.serialize_keras_object(model))
    except (TypeError, ValueError, NotImplementedError) as error:
        raise UnsupportedObjectError(
            f"{target}: the model's config cannot be written as JSON ({error}). Give "
            "custom layers and optimizers a get_config(), or save the model as .keras."
        ) from None
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built and not model.get_compile_config():
        raise UnsupportedObjectError(
            f"{target}: the model has optimizer state but no compile config to rebuild "
            "its optimizer from (its compile() is custom). Save it as .keras, or "
            "define get_compile_config() and compile_from_config()."
        )
    return {
        FORMAT_KEY: FORMAT_VALUE,
        FORMAT_VERSION_KEY: FORMAT_VERSION,
        KERAS_VERSION_KEY: keras.__version__,
        CONFIG_KEY: config,
    }


def _all_layers(model: Any) -> list[Any]:
    """The model and every layer inside it, however deeply nested."""
    # Keras offers no public walk over nested layers; its own saving code uses this one.
    return list(model._flatten_layers(include_self=True, recursive=True))


def _tensor_name(index: int, variable: Any, model: Any) -> str:
    """``00003/dense_1/bias``: the position decides where a tensor goes; the rest is for people.

    Variable paths start with the model's name only when the model was built
    directly, not when it came from a config, so that prefix is dropped.
    """
    return f"{index:05d}/{variable.path.removeprefix(model.name + '/')}"


def _dtype_of(variable: Any, target: Path, keras: Any) -> str:
    dtype = keras.backend.standardize_dtype(variable.dtype)
    if dtype not in _DTYPE_CODES:
        raise UnsupportedObjectError(
            f"{target}: the variable {variable.path} has dtype {dtype}, which nnsave "
            "does not store in safetensors. Save the model as .keras."
        )
    return dtype


def _bytes_of(array: np.ndarray) -> memoryview:
    """A flat byte view of a C-contiguous array (bfloat16 and 0-d arrays included), no copy."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # installed with TensorFlow and JAX

        return np.dtype(ml_dtypes.bfloat16)
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
            f"safetensors layout; this nnsave reads version {FORMAT_VERSION}. Upgrade nnsave."
        )
    config_text = metadata.get(CONFIG_KEY)
    if not isinstance(config_text, str) or len(config_text) > _MAX_CONFIG_BYTES:
        raise FormatError(f"{path}: the model config in its metadata is missing or implausibly large.")
    config = _parse_json(config_text.encode("utf-8"), path, "model config")
    tensors = sorted((_tensor_entry(path, name, entry) for name, entry in header.items()),
                     key=lambda t: (t.begin, t.end, t.name))
    data_start = _LENGTH.size + length
    _check_contiguous(path, tensors, size - data_start)
    model_tensors = [t for t in tensors if not t.name.startswith(OPTIMIZER_PREFIX)]
    optimizer_tensors = [t for t in tensors if t.name.startswith(OPTIMIZER_PREFIX)]
    _check_positions(path, model_tensors, "")
    _check_positions(path, optimizer_tensors, OPTIMIZER_PREFIX)
    return _Layout(metadata, config, model_tensors, optimizer_tensors, data_start)


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


def _check_positions(path: Path, tensors: list[_Tensor], prefix: str) -> None:
    for index, tensor in enumerate(tensors):
        if not tensor.name.startswith(f"{prefix}{index:05d}/"):
            raise FormatError(
                f"{path}: tensor {tensor.name!r} is stored where tensor {prefix}{index:05d} "
                "belongs. The file was not written by nnsave or was changed."
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


def _matched(path: Path, tensors: list[_Tensor], variables: list[Any], what: str) -> list[Any]:
    """``variables``, after checking that the file's tensors fit them one for one."""
    import keras

    variables = list(variables)
    if len(tensors) != len(variables):
        raise FormatError(
            f"{path} holds {len(tensors)} {what} tensors, but the {what} built from its "
            f"config has {len(variables)} variables. The file is damaged or was changed."
        )
    for tensor, variable in zip(tensors, variables):
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if tensor.shape != tuple(variable.shape) or tensor.dtype != dtype:
            raise FormatError(
                f"{path}: tensor {tensor.name!r} is {tensor.dtype} {tensor.shape}, but the "
                f"{what} variable {variable.path} is {dtype} {tuple(variable.shape)}. The "
                "file is damaged or was changed."
            )
    return variables


def _assign(view: memoryview, data_start: int, plan: list[tuple[_Tensor, Any]]) -> None:
    """Assign each planned tensor to its variable, straight from the verified bytes."""
    for tensor, variable in plan:
        begin = data_start + tensor.begin
        array = np.frombuffer(view[begin : data_start + tensor.end], dtype=_numpy_dtype(tensor.dtype))
        variable.assign(array.reshape(tensor.shape))

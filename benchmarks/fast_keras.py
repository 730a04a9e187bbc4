"""A prototype of a faster safe route for large Keras models (not part of nnsave's API).

The model becomes a folder of three files:

- ``config.json``: Keras's own serialisation of the architecture;
- ``model.safetensors``: every variable, written one at a time in the
  safetensors format (any safetensors reader opens it);
- ``manifest.json``: the sha256 and size of both files.

Why it is faster than ``model.save``:

1. Saving streams each variable straight into the file through nnsave's
   hashing writer. Keras instead builds the whole HDF5 file in memory (or in a
   temporary file, for models larger than half of what it believes is free
   memory) and then copies it into the zip archive in 8 KB pieces, computing a
   CRC32 as it goes.
2. Loading reads the file once: each tensor is read into a buffer, hashed and
   assigned. ``keras.models.load_model`` first runs every layer's initializer
   (random numbers for a billion bytes of weights), and only then overwrites
   them; here the layers are built with zero initializers and the original
   initializers are put back afterwards, so ``get_config()`` is unchanged.

Safety is kept: the config, the only part that names classes, is checked
against the manifest before Keras reads it, and Keras deserialises it in safe
mode. The weights are plain numbers, so they can be checked while they stream
in; if the hash does not match, the half-built model is dropped and
:class:`nnsave.IntegrityError` is raised.

Limits of the prototype: variables only (no optimizer state, which an
uncompiled model does not have anyway), top-level layers' initializers only,
and dtypes from :data:`_DTYPES`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nnsave import IntegrityError, storage

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "MANIFEST_FILE", "save", "load", "safetensors_header"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"

_DTYPES = {"float16": "F16", "float32": "F32", "float64": "F64", "int8": "I8", "uint8": "U8",
           "int32": "I32", "int64": "I64", "bool": "BOOL"}
_NUMPY_DTYPES = {code: np.dtype(name) for name, code in _DTYPES.items()}
_MAX_HEADER_BYTES = 100 << 20
_MAX_CONFIG_BYTES = 64 << 20
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


def safetensors_header(tensors: list[tuple[str, str, tuple[int, ...]]]) -> bytes:
    """The length prefix and JSON header for tensors stored back to back in this order.

    ``tensors`` holds ``(name, numpy dtype name, shape)``. The header is padded
    with spaces to a multiple of 8 bytes, as the safetensors writer does.

    >>> blob = safetensors_header([("w", "float32", (2, 3))])
    >>> struct.unpack("<Q", blob[:8])[0] == len(blob) - 8, len(blob) % 8
    (True, 0)
    >>> json.loads(blob[8:])["w"]
    {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}
    """
    header, offset = {}, 0
    for name, dtype, shape in tensors:
        if name in header:
            raise ValueError(f"two tensors are named {name!r}")
        if dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {dtype} is not supported by this prototype")
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[name] = {"dtype": _DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(len(text) + 8) % 8)
    return struct.pack("<Q", len(text)) + text


def save(model: Any, folder: Path) -> Path:
    """Write ``model`` into ``folder`` (created if missing) atomically; return the folder."""
    import keras

    folder = storage.make_directory(Path(folder))
    config = json.dumps(keras.saving.serialize_keras_object(model)).encode("utf-8")
    variables = list(model.weights)
    header = safetensors_header([(_tensor_name(i, v, model), np.dtype(v.dtype).name, tuple(v.shape))
                                 for i, v in enumerate(variables)])
    with storage.atomic_write() as transaction:
        with transaction.stream(folder / WEIGHTS_FILE) as stream:
            stream.write(header)
            for variable in variables:
                # One variable at a time: memory grows by the largest variable, not the model.
                array = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
                stream.write(memoryview(array).cast("B"))
        weights = stream.digest
        transaction.write_bytes(folder / CONFIG_FILE, config)
        manifest = {
            "format": "nnsave-fast-keras-prototype",
            CONFIG_FILE: {"sha256": hashlib.sha256(config).hexdigest(), "size": len(config)},
            WEIGHTS_FILE: {"sha256": weights.sha256, "size": weights.size},
        }
        transaction.write_bytes(folder / MANIFEST_FILE, json.dumps(manifest, indent=1).encode("utf-8"))
    return folder


def load(folder: Path) -> Any:
    """Check the config, build the model, then stream, hash and assign the weights."""
    import keras

    folder = Path(folder)
    manifest = json.loads(storage.read_small_file(folder / MANIFEST_FILE, 1 << 20))
    config_bytes = storage.read_small_file(folder / CONFIG_FILE, _MAX_CONFIG_BYTES)
    expected = manifest[CONFIG_FILE]
    if hashlib.sha256(config_bytes).hexdigest() != expected["sha256"] or len(config_bytes) != expected["size"]:
        raise IntegrityError(f"{folder / CONFIG_FILE} does not match {MANIFEST_FILE}; it was not read.")
    config = json.loads(config_bytes)
    model = keras.saving.deserialize_keras_object(_with_zero_initializers(config), safe_mode=True)
    _restore_initializers(model, config)
    _stream_weights(folder / WEIGHTS_FILE, model, manifest[WEIGHTS_FILE])
    return model


def _stream_weights(path: Path, model: Any, expected: dict[str, Any]) -> None:
    variables = list(model.weights)
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle, ThreadPoolExecutor(max_workers=1) as hasher:
        prefix = _read_exact(handle, 8)
        (length,) = struct.unpack("<Q", prefix)
        if length > _MAX_HEADER_BYTES:
            raise IntegrityError(f"{path}: a {length}-byte header is implausible.")
        header_bytes = _read_exact(handle, length)
        digest.update(prefix + header_bytes)
        size = 8 + length
        header = json.loads(header_bytes)
        header.pop("__metadata__", None)
        tensors = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
        for index, (variable, (name, info)) in enumerate(zip(variables, tensors, strict=False)):
            if not name.startswith(f"{index:05d}/") or tuple(info["shape"]) != tuple(variable.shape):
                raise IntegrityError(f"{path}: tensor {name!r} does not fit the model's variable {index}.")
        if len(tensors) != len(variables):
            raise IntegrityError(f"{path} holds {len(tensors)} tensors; the model has {len(variables)} variables.")
        for variable, (name, info) in zip(variables, tensors):
            buffer = np.empty(info["shape"], dtype=_NUMPY_DTYPES[info["dtype"]])
            view = memoryview(buffer).cast("B")
            _read_exact_into(handle, view)
            # sha256 releases the GIL, so the hash runs beside the assignment.
            pending = hasher.submit(digest.update, view)
            variable.assign(buffer)
            pending.result()
            size += len(view)
        if handle.read(1):
            raise IntegrityError(f"{path} has bytes after its last tensor.")
    if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
        raise IntegrityError(f"{path} does not match {MANIFEST_FILE}; the model built from it was discarded.")


def _tensor_name(index: int, variable: Any, model: Any) -> str:
    """``00003/dense_1/bias``: the position decides where a tensor goes; the rest is for people.

    Variable paths start with the model's name only when the model was built
    directly, not when it came from a config, so loading matches by position
    (as Keras's own weights file does) and checks shapes.
    """
    return f"{index:05d}/{variable.path.removeprefix(model.name + '/')}"


def _read_exact(handle: BinaryIO, count: int) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise IntegrityError(f"{handle.name} is truncated.")
    return data


def _read_exact_into(handle: BinaryIO, view: memoryview) -> None:
    done = 0
    while done < len(view):
        count = handle.readinto(view[done:])
        if not count:
            raise IntegrityError(f"{handle.name} is truncated.")
        done += count


def _with_zero_initializers(config: Any) -> Any:
    """A copy of ``config`` in which every ``*_initializer`` is Zeros (cheap to run)."""
    config = copy.deepcopy(config)
    pending = [config]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_initializer") and isinstance(value, dict) and "class_name" in value:
                    node[key] = dict(_ZEROS)
                else:
                    pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)
    return config


def _restore_initializers(model: Any, config: dict[str, Any]) -> None:
    """Give the top-level layers back the initializers their config names."""
    import keras

    layers = config.get("config", {}).get("layers", [])
    originals = {layer["config"]["name"]: layer["config"] for layer in layers if isinstance(layer, dict)}
    for layer in model.layers:
        for key, value in originals.get(layer.name, {}).items():
            if key.endswith("_initializer") and isinstance(value, dict) and hasattr(layer, key):
                setattr(layer, key, keras.initializers.get(value))

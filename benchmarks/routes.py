"""The routes: each is one way to save a workload and read it back.

A route's ``save`` writes into an empty folder and returns the main file; its
``load`` reads that file back. Routes that need a model skeleton to load into
(``save_weights``, safetensors) get one built before the clock starts, because
that is how those APIs are used: the code that builds the model is part of the
program, not of the file.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Route", "ROUTES", "routes_for", "SKOPS_REVIEWED_TYPES"]


@dataclass(frozen=True)
class Route:
    """One save/load route.

    Attributes
    ----------
    name : str
        Short unique name, used as a key in the results.
    label : str
        What the route calls, for tables.
    kinds : tuple of str
        The workload kinds it applies to.
    save : callable or None
        ``save(obj, folder, context) -> Path``. None for load-only routes.
    load : callable
        ``load(path, context) -> object``.
    loads_from : str or None
        For load-only routes: the route whose files it reads.
    needs_skeleton : bool
        Load into a model built (untimed) beforehand.
    repeat_load : bool
        Measure a repeat load: nnsave's digest cache already holds the
        file's digest (recorded, untimed, once the file has settled). Every
        other route loads with the cache switched off, as a first load.
    """

    name: str
    label: str
    kinds: tuple[str, ...]
    save: Callable[[Any, Path, dict], Path] | None
    load: Callable[[Path, dict], Any]
    loads_from: str | None = None
    needs_skeleton: bool = False
    repeat_load: bool = False


# --- nnsave -----------------------------------------------------------------

def _nnsave_save(obj: Any, folder: Path, context: dict) -> Path:
    import nnsave

    suffix = ".keras" if context["kind"] == "keras" else ".joblib"
    return nnsave.save(obj, folder / f"payload{suffix}")


def _nnsave_load(path: Path, context: dict) -> Any:
    import nnsave

    return nnsave.load(path)


def _nnsave_skops_save(obj: Any, folder: Path, context: dict) -> Path:
    import nnsave

    return nnsave.save(obj, folder / "payload.skops")


def _nnsave_skops_load(path: Path, context: dict) -> Any:
    import nnsave

    # The types were reviewed once, when the workload was designed; a program
    # that loads its own files passes the same list every time.
    return nnsave.load(path, trusted_types=SKOPS_REVIEWED_TYPES[context["kind"]])


def _nnsave_load_mmap(path: Path, context: dict) -> Any:
    import nnsave

    return nnsave.load(path, mmap_mode="r")


# --- Keras ------------------------------------------------------------------

def _keras_save(model: Any, folder: Path, context: dict) -> Path:
    path = folder / "model.keras"
    model.save(path)
    return path


def _keras_load(path: Path, context: dict) -> Any:
    import keras

    return keras.models.load_model(path)


def _weights_save(model: Any, folder: Path, context: dict) -> Path:
    path = folder / "model.weights.h5"
    model.save_weights(path)
    return path


def _weights_load(path: Path, context: dict) -> Any:
    model = context["skeleton"]
    model.load_weights(path)
    return model


def _keras_safetensors_save(model: Any, folder: Path, context: dict) -> Path:
    import keras
    from safetensors.numpy import save_file

    path = folder / "model.safetensors"
    save_file({v.path: keras.ops.convert_to_numpy(v) for v in model.weights}, path)
    return path


def _keras_safetensors_load(path: Path, context: dict) -> Any:
    from safetensors.numpy import load_file

    model = context["skeleton"]
    arrays = load_file(path)
    for variable in model.weights:
        variable.assign(arrays[variable.path])
    return model


def _nnsave_safetensors_save(model: Any, folder: Path, context: dict) -> Path:
    import nnsave

    return nnsave.save(model, folder / "payload.safetensors")


# --- joblib, pickle, skops, safetensors for plain arrays --------------------

def _joblib_saver(compress: int) -> Callable[[Any, Path, dict], Path]:
    def save(obj: Any, folder: Path, context: dict) -> Path:
        import joblib

        path = folder / "payload.joblib"
        joblib.dump(obj, path, compress=compress)
        return path

    return save


def _durable(save: Callable[[Any, Path, dict], Path]) -> Callable[[Any, Path, dict], Path]:
    """``save``, then fsync the file and its folder: what nnsave's save also guarantees."""

    def durable_save(obj: Any, folder: Path, context: dict) -> Path:
        path = save(obj, folder, context)
        for target in (path, folder):
            descriptor = os.open(target, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        return path

    return durable_save


def _joblib_load(path: Path, context: dict) -> Any:
    import joblib

    return joblib.load(path)


def _joblib_load_mmap(path: Path, context: dict) -> Any:
    import joblib

    return joblib.load(path, mmap_mode="r")


def _pickle_save(obj: Any, folder: Path, context: dict) -> Path:
    path = folder / "payload.pkl"
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=5)
    return path


def _pickle_load(path: Path, context: dict) -> Any:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def _skops_save(obj: Any, folder: Path, context: dict) -> Path:
    import skops.io

    path = folder / "payload.skops"
    skops.io.dump(obj, path)
    return path


def _skops_load(path: Path, context: dict) -> Any:
    import skops.io

    # The audit is part of the safe route: list the types skops does not trust
    # by default, (a person would review them here), then load with them.
    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def _arrays_safetensors_save(arrays: dict, folder: Path, context: dict) -> Path:
    from safetensors.numpy import save_file

    path = folder / "payload.safetensors"
    save_file(arrays, path)
    return path


def _arrays_safetensors_load(path: Path, context: dict) -> Any:
    from safetensors.numpy import load_file

    return load_file(path)


# --- the limit: the same number of bytes, plain write + fsync and read back --

def _disk_save(obj: Any, folder: Path, context: dict) -> Path:
    path = folder / "payload.bin"
    data = memoryview(context["disk_bytes"]).cast("B")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        written = 0
        while written < len(data):
            written += os.write(descriptor, data[written : written + (64 << 20)])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return path


def _disk_load(path: Path, context: dict) -> Any:
    # Into memory that is already mapped (see run.py): the limit is moving the
    # bytes, so the page faults of fresh memory, which differ a lot from one
    # run to the next on a virtual machine, stay out of it.
    buffer = context["read_buffer"]
    view = memoryview(buffer).cast("B")
    with open(path, "rb", buffering=0) as handle:
        done = 0
        while done < len(view):
            count = handle.readinto(view[done : done + (64 << 20)])
            if not count:
                raise EOFError(path)
            done += count
    return buffer


_ALL = ("keras", "forest", "arrays")

#: In the order they run within each round; load-only routes follow their source.
ROUTES = [
    Route("nnsave", "nnsave.save / nnsave.load (verified)", _ALL, _nnsave_save, _nnsave_load),
    # Keras files are hashed beside load_model, so the cache changes little there.
    Route("nnsave-repeat", "nnsave.load again: digest from the cache (verified)", ("forest", "arrays"), None, _nnsave_load, loads_from="nnsave", repeat_load=True),
    Route("nnsave-mmap", "nnsave.load(mmap_mode='r') (verified)", ("forest", "arrays"), None, _nnsave_load_mmap, loads_from="nnsave"),
    Route("nnsave-mmap-repeat", "nnsave.load(mmap_mode='r') again: digest from the cache", ("forest", "arrays"), None, _nnsave_load_mmap, loads_from="nnsave", repeat_load=True),
    Route("nnsave-skops", "nnsave.save / nnsave.load to .skops (verified)", ("forest", "arrays"), _nnsave_skops_save, _nnsave_skops_load),
    Route("keras", "model.save / keras.models.load_model", ("keras",), _keras_save, _keras_load),
    Route("keras-fsync", "model.save, then fsync file and folder", ("keras",), _durable(_keras_save), _keras_load),
    Route("keras-weights", "save_weights / load_weights", ("keras",), _weights_save, _weights_load, needs_skeleton=True),
    Route("safetensors", "safetensors save_file / load_file (weights)", ("keras",), _keras_safetensors_save, _keras_safetensors_load, needs_skeleton=True),
    Route("safetensors", "safetensors save_file / load_file", ("arrays",), _arrays_safetensors_save, _arrays_safetensors_load),
    Route("nnsave-safetensors", "nnsave.save / nnsave.load to .safetensors (verified)", ("keras",), _nnsave_safetensors_save, _nnsave_load),
    Route("joblib", "joblib.dump / load, compress=0", ("forest", "arrays"), _joblib_saver(0), _joblib_load),
    Route("joblib-fsync", "joblib.dump, then fsync file and folder", ("forest", "arrays"), _durable(_joblib_saver(0)), _joblib_load),
    Route("joblib-mmap", "joblib.load(mmap_mode='r')", ("forest", "arrays"), None, _joblib_load_mmap, loads_from="joblib"),
    Route("joblib-c3", "joblib.dump / load, compress=3", ("forest", "arrays"), _joblib_saver(3), _joblib_load),
    Route("pickle", "pickle protocol 5", ("forest", "arrays"), _pickle_save, _pickle_load),
    Route("skops", "skops.io.dump / load (audited)", ("forest", "arrays"), _skops_save, _skops_load),
    Route("disk", "limit: write + fsync, read back (into mapped memory)", _ALL, _disk_save, _disk_load),
]

#: Types outside skops's safe set that each workload holds, approved by name.
SKOPS_REVIEWED_TYPES = {"forest": ("sklearn.tree._tree.Tree",), "arrays": ()}


def routes_for(kind: str) -> list[Route]:
    """The routes that apply to a workload kind, in running order.

    >>> [route.name for route in routes_for("forest")]
    ['nnsave', 'nnsave-repeat', 'nnsave-mmap', 'nnsave-mmap-repeat', 'nnsave-skops', 'joblib', 'joblib-fsync', 'joblib-mmap', 'joblib-c3', 'pickle', 'skops', 'disk']
    """
    return [route for route in ROUTES if kind in route.kinds]

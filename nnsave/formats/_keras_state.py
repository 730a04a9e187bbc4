"""A Keras model's state as Keras's own walk hands it over: live, or recorded at one moment.

Keras's ``saving_lib`` visits every layer, optimizer and metric of a model
and hands each a store to save its values into (``save_own_variables``) and a
folder for files (``save_assets``: a lookup layer's vocabulary). Both Keras
formats write what that walk hands over:

- :class:`LiveState` walks the model itself, as a synchronous save does;
- :func:`record_state` walks it once into host memory and returns a
  :class:`StateSnapshot`, which later hands the same values, in the same
  order, to any store: a background save can then write the file while
  training goes on and changes the model.

A :class:`ModelSnapshot` adds what else a save writes (the config, what the
model expects), all taken at the same moment.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import MissingDependencyError
from ._base import module_if_imported

__all__ = [
    "KerasStateWalk",
    "keras_state_walk",
    "Group",
    "StateSource",
    "LiveState",
    "StateSnapshot",
    "record_state",
    "host_copy",
    "ModelSnapshot",
]


@dataclass(frozen=True)
class KerasStateWalk:
    """The walk behind ``model.save``, with stores of nnsave's own.

    Its functions live in ``keras.src`` and accept only stores derived from
    Keras's own store classes, so nnsave's stores are built on those bases
    (:meth:`weights_store`, :meth:`assets_store`).
    """

    save_state: Callable[..., None]
    load_state: Callable[..., None]
    weights_base: type
    assets_base: type

    def weights_store(self, store_class: type, *args: Any) -> Any:
        return _derived(store_class, self.weights_base)(*args)

    def assets_store(self, store_class: type, *args: Any) -> Any:
        return _derived(store_class, self.assets_base)(*args)

    def save(self, model: Any, weights: Any, assets: Any | None, skipped: list[Any]) -> None:
        self.save_state(
            model,
            weights_store=weights,
            assets_store=assets,
            inner_path="",
            visited_saveables={id(saveable) for saveable in skipped},
        )

    def load(self, model: Any, source: Any, skipped: list[Any]) -> dict[int, tuple[Any, Exception]]:
        """Fill ``model`` from ``source``; return what failed, by owner."""
        failures: dict[int, tuple[Any, Exception]] = {}
        self.load_state(
            model,
            weights_store=source,
            assets_store=None,
            inner_path="",
            visited_saveables={id(saveable) for saveable in skipped},
            failed_saveables=set(),
            error_msgs=failures,
        )
        return failures


def keras_state_walk(path: Path, action: str) -> KerasStateWalk:
    """Keras's walk, or a :class:`MissingDependencyError` naming ``action`` on ``path``."""
    try:
        from keras.src.saving.saving_lib import DiskIOStore, NpzIOStore, _load_state, _save_state
    except ImportError:
        keras = module_if_imported("keras")
        version = getattr(keras, "__version__", "unknown")
        raise MissingDependencyError(
            f"{action} {path} needs Keras's state walk (_save_state and _load_state in "
            f"keras.src.saving.saving_lib), which Keras {version} does not have. Use "
            "the .keras format, or install the Keras version nnsave was tested with: "
            'pip install "nnsave[keras]"'
        ) from None
    return KerasStateWalk(_save_state, _load_state, NpzIOStore, DiskIOStore)


@functools.cache
def _derived(store_class: type, keras_base: type) -> type:
    # Our methods come first; Keras's base contributes only its type.
    return type(store_class.__name__, (store_class, keras_base), {})


class Group(dict):
    """The store one owner writes into: each value is passed on as it arrives."""

    def __init__(self, path: str, receive: Callable[[str, str, Any], None]) -> None:
        super().__init__()
        self._path = path
        self._receive = receive

    def __setitem__(self, key: str, value: Any) -> None:
        self._receive(self._path, key, value)
        super().__setitem__(key, None)  # the key, for owners that count; not the value


class StateSource(Protocol):
    """Hands a model's state to Keras-style stores, in the order of Keras's walk."""

    def save_state(self, weights: Any, assets: Any | None) -> None:
        """Pass every owner's values to ``weights`` and its files to ``assets`` (if given)."""


@dataclass(frozen=True)
class LiveState:
    """The model itself: each save walks it again."""

    model: Any
    walk: KerasStateWalk
    #: Saveables the walk leaves out (an optimizer that has taken no step).
    skipped: tuple[Any, ...] = ()

    def save_state(self, weights: Any, assets: Any | None) -> None:
        self.walk.save(self.model, weights, assets, list(self.skipped))


@dataclass
class _RecordedOwner:
    """What one ``make`` call of the walk received: the owner's path, its metadata, its values."""

    path: str
    metadata: dict[str, Any] | None
    values: list[tuple[str, np.ndarray]] = field(default_factory=list)


class StateSnapshot:
    """A model's state copied into host memory at one moment, with its asset files.

    :meth:`save_state` replays the walk that recorded it: the same ``make``
    calls with the same metadata, then the same values, in the same order,
    so any store writes exactly what it would have written from the model
    at that moment. Call :meth:`release` when done, to delete the asset copies.
    """

    def __init__(self, owners: list[_RecordedOwner], asset_paths: list[str], asset_folder: Path | None) -> None:
        self._owners = owners
        self._asset_paths = asset_paths
        self._asset_folder = asset_folder

    @property
    def nbytes(self) -> int:
        """The bytes of all recorded values."""
        return sum(value.nbytes for owner in self._owners for _, value in owner.values)

    def save_state(self, weights: Any, assets: Any | None) -> None:
        for owner in self._owners:
            group = weights.make(owner.path, metadata=owner.metadata)
            for key, value in owner.values:
                group[key] = value
        if assets is not None and self._asset_folder is not None:
            for path in self._asset_paths:
                assets.make(path)
            shutil.copytree(self._asset_folder, assets.make(""), dirs_exist_ok=True)

    def release(self) -> None:
        if self._asset_folder is not None:
            shutil.rmtree(self._asset_folder, ignore_errors=True)
            self._asset_folder = None


class _StateRecorder:
    """Stands where Keras expects a weights store; copies each value as it is handed over."""

    def __init__(self) -> None:
        self.recorded: list[_RecordedOwner] = []
        self.owners: dict[str, str] = {}

    def make(self, path: str, metadata: dict[str, Any] | None = None) -> Group:
        if metadata and isinstance(metadata.get("name"), str):
            self.owners[path] = metadata["name"]
        self.recorded.append(_RecordedOwner(path, dict(metadata) if metadata else metadata))
        return Group(path, self._record)

    def close(self) -> None:
        """Nothing to release; Keras's stores have this method."""

    def _record(self, path: str, key: str, value: Any) -> None:
        unshared = isinstance(value, np.ndarray) and sys.getrefcount(value) <= _FRESH_VALUE_REFERENCES
        self.recorded[-1].values.append((key, value if unshared and _owns_its_memory(value) else host_copy(value)))


def _references_to_a_fresh_value() -> int:
    """What :func:`sys.getrefcount` says in a receiver of :class:`Group` about a value nobody keeps.

    An owner that hands over a new array (an optimizer's ``variable.numpy()``)
    keeps no reference to it, so the array is already a snapshot and copying
    it again would double the time training waits. An array the owner keeps
    has one reference more than this count, and is copied.
    """
    counts: list[int] = []
    Group("", lambda path, key, value: counts.append(sys.getrefcount(value)))["probe"] = np.empty(1)
    return counts[0]


_FRESH_VALUE_REFERENCES = _references_to_a_fresh_value()


def _owns_its_memory(array: np.ndarray) -> bool:
    # A view shares its memory with its base, which someone may still change.
    return array.base is None and array.flags.owndata


def host_copy(value: Any) -> np.ndarray:
    """A copy of ``value`` in host memory that nothing else refers to.

    The variable, or an array its owner keeps, changes with the next training
    step; the copy does not. Keras's ``convert_to_numpy`` builds its result
    with ``np.array``, which copies, on every backend nnsave supports
    (TensorFlow, JAX, PyTorch); an array handed over as it is gets copied here.
    """
    if isinstance(value, np.ndarray):
        return value.copy()
    return np.asarray(module_if_imported("keras").ops.convert_to_numpy(value))


class _AssetRecorder:
    """Stands where Keras expects an asset store: each owner writes its files into a private folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: list[str] = []

    def make(self, path: str) -> str:
        self.paths.append(path)
        directory = self.folder / path if path else self.folder
        directory.mkdir(parents=True, exist_ok=True)
        return str(directory)

    def close(self) -> None:
        """The folder lives until the snapshot is released."""


def record_state(
    model: Any, walk: KerasStateWalk, *, skipped: tuple[Any, ...] = (), assets: Callable[[dict[str, str]], Any] | None = None
) -> StateSnapshot:
    """Walk ``model`` once and copy its state into host memory.

    ``assets`` makes the asset store from the recorded owners' names (so that
    a refusal can name the layer); without it, owners' files are recorded
    into a private temporary folder.
    """
    recorder = walk.weights_store(_StateRecorder)
    if assets is not None:
        walk.save(model, recorder, assets(recorder.owners), list(skipped))
        return StateSnapshot(recorder.recorded, [], None)
    folder = Path(tempfile.mkdtemp(prefix="nnsave-snapshot-"))  # mode 0700
    try:
        asset_recorder = walk.assets_store(_AssetRecorder, folder)
        walk.save(model, recorder, asset_recorder, list(skipped))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return StateSnapshot(recorder.recorded, asset_recorder.paths, folder)


@dataclass
class ModelSnapshot:
    """Everything a save of one Keras model writes, taken at one moment on the caller's thread.

    A format handler makes it (``handler.snapshot(model, target)``) and later
    writes it like the model itself (``nnsave.save(snapshot, target)``), from
    any thread: the file is the one a synchronous save at that moment would
    have written.
    """

    format_name: str
    #: ``module.QualifiedName`` of the model's class, for the manifest.
    class_path: str
    #: What the model expects and returns (``handler.expects``), for the manifest.
    expects: dict[str, Any]
    #: What ``handler.check_saveable`` said about the model.
    warnings: list[str]
    #: The format's own description of the model (its config), as the format writes it.
    header: Any
    state: StateSnapshot

    def release(self) -> None:
        """Delete the copies of the model's asset files."""
        self.state.release()

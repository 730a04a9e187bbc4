"""TensorFlow checkpoints (TF1 ``Saver`` and TF2 ``tf.train.Checkpoint``): inspect and migrate.

A TensorFlow checkpoint is not one file but a *prefix*: ``model.ckpt-5`` names
``model.ckpt-5.index`` (which variable lives where) and one or more shards
``model.ckpt-5.data-00000-of-00001`` (the values). A TF1 ``Saver`` keys each
value by the variable's graph name (``W``, ``dense/kernel``); a TF2
object-based checkpoint keys it by its path through the object graph
(``model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``).

The layout helpers here need nothing but the file system. Reading values needs
TensorFlow, which is imported only when a function that reads is called.

Examples
--------
Move the weights of an old softmax regression (``W`` of shape 64x10, ``b`` of
shape 10) into a Keras model and keep it as a ``.keras`` file::

    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(10, activation="softmax")])
    nnsave.legacy.assign_tf1_weights(model, "old/model.ckpt-95",
                                     mapping={"W": "dense/kernel", "b": "dense/bias"})
    nnsave.save(model, "softmax.keras")
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from .errors import FormatError, NNSaveError

__all__ = [
    "WeightMismatchError",
    "TF_STATE_NAME",
    "MAX_STATE_BYTES",
    "TFState",
    "tf_checkpoint_prefix",
    "parse_tf_state",
    "checkpoint_files",
    "describe_tf_checkpoint",
    "load_tf1_variables",
    "assign_tf1_weights",
]

INDEX_SUFFIX = ".index"
#: TensorFlow's state file, written by ``tf.train.CheckpointManager`` and TF1 ``Saver``.
TF_STATE_NAME = "checkpoint"
#: A state file lists a few dozen paths; anything far larger is not one.
MAX_STATE_BYTES = 1 << 20
#: The entry that marks a TF2 object-based checkpoint; it holds the object graph, not a variable.
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

_STATE_LINE = re.compile(r'^\s*(model_checkpoint_path|all_model_checkpoint_paths)\s*:\s*"((?:[^"\\]|\\.)*)"\s*$')
_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {
    b"n": b"\n", b"r": b"\r", b"t": b"\t", b'"': b'"', b"'": b"'", b"\\": b"\\",
    b"a": b"\a", b"b": b"\b", b"f": b"\f", b"v": b"\v", b"?": b"?",
}
# Optimizer slots, step counters and bookkeeping that a Saver or Checkpoint
# stores beside the model's own variables. They have no place in a Keras model.
_TRAINING_STATE = re.compile(
    r"(^|/)(Adam|Adam_\d+|Momentum|RMSProp|RMSProp_\d+|Adagrad|Adadelta|Adadelta_\d+|Ftrl|Ftrl_\d+)$"
    r"|(^|/)(beta1_power|beta2_power|global_step|save_counter)(/|$)"
    r"|(^|/)optimizer/|\.OPTIMIZER_SLOT/"
)

PathLike = str | os.PathLike[str]


class WeightMismatchError(NNSaveError, ValueError):
    """A checkpoint's variables do not fit the model they should be copied into."""


def tf_checkpoint_prefix(path: PathLike) -> Path | None:
    """The checkpoint prefix that ``path`` names, or None if it names no TF checkpoint.

    ``path`` may be the prefix itself (``model.ckpt-5``), its ``.index`` file,
    or one of its ``.data-*`` shards.
    """
    path = Path(path)
    if path.is_file() and path.name.endswith(INDEX_SUFFIX):
        return path.with_name(path.name[: -len(INDEX_SUFFIX)])
    shard = _SHARD.search(path.name)
    if shard and path.is_file():
        return path.with_name(path.name[: shard.start()])
    if not path.is_file() and path.with_name(path.name + INDEX_SUFFIX).is_file():
        return path
    return None


def checkpoint_files(prefix: PathLike) -> tuple[list[Path], str | None]:
    """The files that make up the checkpoint at ``prefix``, and what is missing, if anything.

    A checkpoint is complete when its ``.index`` file and every one of its
    ``.data-NNNNN-of-MMMMM`` shards exist and are regular files (TensorFlow
    would block forever reading a FIFO). This checks presence only: the bytes
    of a TensorFlow checkpoint carry no hash that could be verified.
    """
    prefix = Path(prefix)
    index = prefix.with_name(prefix.name + INDEX_SUFFIX)
    problem = _irregular(index)
    if problem:
        return [], problem
    parent = prefix.parent if str(prefix.parent) else Path(".")
    try:
        names = os.listdir(parent)
    except OSError as error:
        return [index], f"the shards of {prefix.name} cannot be listed ({error.strerror})"
    shards: dict[int, Path] = {}
    expected = None
    for name in names:
        if name.startswith(prefix.name) and (match := _SHARD.fullmatch(name[len(prefix.name) :])):
            shards[int(match.group(1))] = parent / name
            expected = int(match.group(2))
    if expected is None:
        return [index], f"no {prefix.name}.data-* shard exists"
    missing = [number for number in range(expected) if number not in shards]
    if missing:
        return [index, *shards.values()], (
            f"{len(missing)} of {expected} data shards are missing "
            f"(first: {prefix.name}.data-{missing[0]:05d}-of-{expected:05d})"
        )
    files = [index, *(shards[number] for number in range(expected))]
    problem = next(filter(None, map(_irregular, files[1:])), None)
    return files, problem


def _irregular(path: Path) -> str | None:
    """Why ``path`` cannot be one of a checkpoint's files, or None if it can."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return f"{path.name} is missing"
    return None if stat.S_ISREG(mode) else f"{path.name} is not a regular file"


@dataclass(frozen=True)
class TFState:
    """What a ``checkpoint`` state file names.

    Attributes
    ----------
    prefixes : list of pathlib.Path
        The checkpoint prefixes it names, newest first, each inside the directory.
    outside : list of str
        Paths it names that lead outside the directory; they are ignored.
    """

    prefixes: list[Path]
    outside: list[str]


def parse_tf_state(data: bytes, directory: Path) -> TFState:
    """The prefixes a ``checkpoint`` state file names, newest first.

    The file is a text-format ``CheckpointState`` protocol buffer::

        model_checkpoint_path: "model.ckpt-95"
        all_model_checkpoint_paths: "model.ckpt-90"
        all_model_checkpoint_paths: "model.ckpt-95"

    It is parsed here without TensorFlow. TensorFlow writes this file beside
    the checkpoints it names, so every prefix is looked up in ``directory``:

    - a relative path is joined to it, and must stay inside it
      (``../outside/model.ckpt-7`` does not, nor does a subdirectory that is
      a symbolic link to elsewhere);
    - an absolute path (TF1's ``Saver`` writes them) keeps only its name,
      which is what makes a moved or copied folder, or one from another
      machine, still resolve to its own files.

    Raises
    ------
    nnsave.FormatError
        The file is not UTF-8, holds a malformed escape, or names no
        ``model_checkpoint_path``.

    Examples
    --------
    >>> from pathlib import Path
    >>> state = parse_tf_state(b'model_checkpoint_path: "/old/machine/model.ckpt-95"\\n', Path("run"))
    >>> [prefix.as_posix() for prefix in state.prefixes]
    ['run/model.ckpt-95']
    >>> parse_tf_state(b'model_checkpoint_path: "../outside/model.ckpt-7"\\n', Path("run")).outside
    ['../outside/model.ckpt-7']
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{directory / TF_STATE_NAME} is not UTF-8 text") from None
    latest, history = None, []
    for line in text.splitlines():
        match = _STATE_LINE.match(line)
        if match is None:
            continue  # timestamps, and fields that later TensorFlow versions add
        value = _unescape_proto_string(match.group(2), directory)
        if match.group(1) == "model_checkpoint_path":
            latest = value
        else:
            history.append(value)
    if latest is None:
        raise FormatError(f"{directory / TF_STATE_NAME} names no model_checkpoint_path")
    prefixes, outside = [], []
    for value in dict.fromkeys([latest, *reversed(history)]):
        prefix = _confined(value, directory)
        if prefix is None:
            outside.append(value)
        else:
            prefixes.append(prefix)
    return TFState(list(dict.fromkeys(prefixes)), outside)


def _confined(value: str, directory: Path) -> Path | None:
    """Where ``value`` names a prefix inside ``directory``; None if it leads outside."""
    if "\x00" in value:
        return None
    for flavour in (PurePosixPath, PureWindowsPath):
        if flavour(value).is_absolute():
            name = flavour(value).name
            return directory / name if name not in ("", ".", "..") else None
    parts = PurePosixPath(os.path.normpath(value)).parts
    if not parts or parts[0] in (".", "..") or parts[-1] == "..":
        return None
    prefix = directory.joinpath(*parts)
    # A subdirectory may be a symbolic link to somewhere else.
    if not Path(os.path.realpath(prefix.parent)).is_relative_to(os.path.realpath(directory)):
        return None
    return prefix


def _unescape_proto_string(text: str, directory: Path) -> str:
    """A text-format protocol buffer string's value: C escapes over UTF-8 bytes."""

    def byte(match: re.Match[bytes]) -> bytes:
        octal, hexadecimal, other = match.groups()
        if octal is not None and int(octal, 8) < 256:
            return bytes([int(octal, 8)])
        if hexadecimal is not None:
            return bytes([int(hexadecimal, 16)])
        if other is not None and other in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[other]
        raise FormatError(f"{directory / TF_STATE_NAME} holds the malformed escape {match.group(0)!r}")

    unescaped = _ESCAPE.sub(byte, text.encode("utf-8"))
    try:
        return unescaped.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{directory / TF_STATE_NAME} names a path that is not UTF-8") from None


def describe_tf_checkpoint(prefix: PathLike) -> dict[str, Any]:
    """Variable names, shapes and dtypes of a TF checkpoint, read without building a graph.

    Returns
    -------
    dict
        ``variables`` (list of ``{"name", "shape", "dtype"}``, in natural name
        order), ``kind`` (``"TF1 name-based"`` or ``"TF2 object-based"``),
        ``size`` (bytes over all files) and ``files`` (how many).
    """
    prefix = Path(prefix)
    files, problem = checkpoint_files(prefix)
    if problem:
        raise FormatError(f"{prefix} is not a complete TensorFlow checkpoint: {problem}.")
    reader = _reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    variables = [
        {"name": name, "shape": [int(d) for d in shapes[name]], "dtype": dtypes[name].name}
        for name in sorted(shapes, key=_natural_key)
        if name != OBJECT_GRAPH_KEY
    ]
    return {
        "variables": variables,
        "kind": "TF2 object-based" if OBJECT_GRAPH_KEY in shapes else "TF1 name-based",
        "size": sum(path.stat().st_size for path in files),
        "files": len(files),
    }


def load_tf1_variables(prefix: PathLike) -> dict[str, np.ndarray]:
    """Read every variable of a TensorFlow checkpoint into numpy arrays.

    Works for TF1 ``Saver`` checkpoints and for TF2 object-based ones; no
    graph or session is needed. The object-graph entry of a TF2 checkpoint is
    left out, since it is bookkeeping rather than a variable.

    Parameters
    ----------
    prefix : str or os.PathLike
        The checkpoint prefix, e.g. the value of ``tf.train.latest_checkpoint``
        or of :func:`nnsave.latest_checkpoint`.

    Returns
    -------
    dict of str to numpy.ndarray
        Variable name to value, in natural name order.

    Examples
    --------
    >>> variables = nnsave.legacy.load_tf1_variables("old/model.ckpt-95")  # doctest: +SKIP
    >>> {name: value.shape for name, value in variables.items()}  # doctest: +SKIP
    {'W': (64, 10), 'b': (10,)}
    """
    prefix = _complete_prefix(prefix)
    reader = _reader(prefix)
    names = sorted(reader.get_variable_to_shape_map(), key=_natural_key)
    return {name: np.asarray(reader.get_tensor(name)) for name in names if name != OBJECT_GRAPH_KEY}


def assign_tf1_weights(
    model: Any, prefix: PathLike, mapping: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Copy a TensorFlow checkpoint's variables into a built Keras model.

    Every weight of the model must receive a value, and every pair must agree
    in shape and dtype. All pairs are checked before any weight is assigned,
    so on error the model is unchanged.

    Parameters
    ----------
    model : keras.Model
        A built model (give it a ``keras.Input``) with the same architecture.
    prefix : str or os.PathLike
        The checkpoint prefix.
    mapping : dict of str to str, optional
        Checkpoint variable name → Keras variable path (``variable.path``, such
        as ``"dense/kernel"``). Without it, weights are matched by shape: each
        model weight, in ``model.weights`` order, takes the first unused
        checkpoint variable of the same shape, in natural name order. Optimizer
        slots, ``global_step`` and similar training state are skipped. Pass a
        mapping when several layers have weights of the same shape.

    Returns
    -------
    dict of str to str
        Keras variable path → the checkpoint variable it received.

    Raises
    ------
    WeightMismatchError
        A name is missing, a shape or dtype differs, or a weight is left without a value.

    Examples
    --------
    >>> model = keras.Sequential([keras.Input((64,)),  # doctest: +SKIP
    ...                           keras.layers.Dense(10, activation="softmax")])
    >>> nnsave.legacy.assign_tf1_weights(model, "old/model.ckpt-95")  # doctest: +SKIP
    {'sequential/dense/kernel': 'W', 'sequential/dense/bias': 'b'}
    """
    prefix = _complete_prefix(prefix)
    variables = load_tf1_variables(prefix)
    weights = list(getattr(model, "weights", None) or [])
    if not weights:
        raise WeightMismatchError(
            f"The model has no weights yet, so nothing from {prefix} can be assigned. "
            "Build it first: start it with keras.Input(shape=...) or call model.build(...)."
        )
    if mapping is None:
        pairs = _pair_by_shape(weights, variables, prefix)
    else:
        pairs = _pair_by_mapping(weights, variables, mapping, prefix)
    for weight, name in pairs:
        _check_fit(weight, name, variables[name], prefix)
    for weight, name in pairs:
        weight.assign(variables[name])
    return {weight.path: name for weight, name in pairs}


def _pair_by_shape(weights: list[Any], variables: dict[str, np.ndarray], prefix: Path) -> list[tuple[Any, str]]:
    unused = [name for name in variables if not _TRAINING_STATE.search(name)]
    if len(unused) != len(weights):
        raise WeightMismatchError(
            f"The model has {len(weights)} weights but {prefix} holds {len(unused)} model "
            f"variables, so they cannot be matched by shape.\n  model     : "
            f"{_describe_weights(weights)}\n  checkpoint: {_describe_variables(unused, variables)}\n"
            "Use a model with the same layers, or pass mapping={checkpoint name: Keras path}."
        )
    pairs = []
    for weight in weights:
        shape = tuple(weight.shape)
        name = next((n for n in unused if variables[n].shape == shape), None)
        if name is None:
            raise WeightMismatchError(
                f"No variable of shape {shape} is left in {prefix} for the model weight "
                f"{weight.path!r}. Unmatched checkpoint variables: "
                f"{_describe_variables(unused, variables)}. Pass a mapping to pair them by name."
            )
        unused.remove(name)
        pairs.append((weight, name))
    return pairs


def _pair_by_mapping(
    weights: list[Any], variables: dict[str, np.ndarray], mapping: Mapping[str, str], prefix: Path
) -> list[tuple[Any, str]]:
    by_path = {weight.path: weight for weight in weights}
    targets: dict[str, str] = {}
    for name, path in mapping.items():
        if name not in variables:
            raise WeightMismatchError(
                f"mapping names {name!r}, but {prefix} has no such variable. It has: "
                f"{_describe_variables(list(variables), variables)}."
            )
        if path not in by_path:
            raise WeightMismatchError(
                f"mapping sends {name!r} to {path!r}, but the model has no weight with that "
                f"path. Its weights are: {_describe_weights(weights)}."
            )
        if path in targets:
            raise WeightMismatchError(
                f"mapping sends both {targets[path]!r} and {name!r} to the weight {path!r}."
            )
        targets[path] = name
    unassigned = [weight for weight in weights if weight.path not in targets]
    if unassigned:
        raise WeightMismatchError(
            f"mapping leaves {len(unassigned)} model weights without a value: "
            f"{_describe_weights(unassigned)}. Map a checkpoint variable to each of them."
        )
    return [(weight, targets[weight.path]) for weight in weights]


def _check_fit(weight: Any, name: str, value: np.ndarray, prefix: Path) -> None:
    if tuple(weight.shape) != value.shape:
        raise WeightMismatchError(
            f"Shape mismatch: checkpoint variable {name!r} in {prefix} has shape "
            f"{value.shape}, but the model weight {weight.path!r} has shape "
            f"{tuple(weight.shape)}. Nothing was assigned."
        )
    wanted = np.dtype(str(weight.dtype))
    if value.dtype != wanted:
        raise WeightMismatchError(
            f"Dtype mismatch: checkpoint variable {name!r} in {prefix} is {value.dtype}, "
            f"but the model weight {weight.path!r} is {wanted}. Nothing was assigned; "
            "build the model with the checkpoint's dtype (dtype=...) or convert the values yourself."
        )


def _describe_weights(weights: list[Any]) -> str:
    return ", ".join(f"{w.path} {tuple(w.shape)}" for w in weights)


def _describe_variables(names: list[str], variables: dict[str, np.ndarray]) -> str:
    shown = ", ".join(f"{n} {variables[n].shape}" for n in names[:20])
    return shown + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "") or "(none)"


def _complete_prefix(prefix: PathLike) -> Path:
    located = tf_checkpoint_prefix(prefix)
    if located is None:
        raise FileNotFoundError(
            f"{prefix} is not a TensorFlow checkpoint: neither {Path(prefix).name}{INDEX_SUFFIX} "
            "nor a .data-* shard exists. Pass the prefix that tf.train.latest_checkpoint "
            "or nnsave.latest_checkpoint returns."
        )
    _, problem = checkpoint_files(located)
    if problem:
        raise FormatError(f"{located} is not a complete TensorFlow checkpoint: {problem}.")
    return located


def _reader(prefix: Path) -> Any:
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "Reading a TensorFlow checkpoint needs TensorFlow: pip install tensorflow."
        ) from error
    try:
        return tf.train.load_checkpoint(str(prefix))
    except (tf.errors.OpError, ValueError) as error:
        raise FormatError(f"{prefix} cannot be read as a TensorFlow checkpoint: {error}") from None


def _natural_key(name: str) -> list[Any]:
    # "Variable_10" must sort after "Variable_2", as TF1 created them.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

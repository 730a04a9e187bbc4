"""What the two Keras formats (``.keras`` and ``.safetensors``) share.

Both keep Keras's own description of the model, its *config*, and rebuild the
model from it when loading. A config is data, but building it can reach
further than the file: a ``Lambda`` layer holds Python bytecode, a
``TFSMLayer`` runs another SavedModel from disk, a lookup layer may read its
vocabulary from any file path. :func:`audit_config` finds these before Keras
sees the config, and reports them as facts; :mod:`nnsave.trust` decides.
The load then runs inside Keras's safe-mode scope, so that
``keras.config.enable_unsafe_deserialization()`` called anywhere in the
process cannot switch safe mode off for it.
"""

from __future__ import annotations

import contextlib
import struct
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..errors import FormatError, InvalidArgumentError, NNSaveError, UnknownClassError
from ._base import FileFacts, FormatHandler, LoadOptions, class_path, module_if_imported
from ._keras_state import ModelSnapshot

__all__ = [
    "KerasModelHandler",
    "audit_config",
    "unknown_classes",
    "layers_from_config",
    "keras_errors_explained",
    "safe_mode_scope",
]

#: Class names whose deserialisation runs Python code stored in the file.
_CODE_CLASSES = {
    "Lambda": "a Lambda layer (Python code)",
    "__lambda__": "a serialised Python lambda",
    "TorchModuleWrapper": "a TorchModuleWrapper (a pickled torch module)",
}
#: Class names that reach outside the file when built.
_OUTSIDE_CLASSES = {"TFSMLayer": "a TFSMLayer, which runs another SavedModel from disk"}
#: Config keys that name a file to read when their value is a string: the
#: lookup layers' (StringLookup, IntegerLookup, TextVectorization) vocabulary
#: and idf_weights, TFSMLayer's filepath, and the names other layers use.
_PATH_KEYS = ("vocabulary", "idf_weights", "filepath", "file_path", "path")
#: Modules whose classes Keras itself provides.
_KERAS_MODULES = ("keras",)
#: Keras-family packages that Keras would import by name; their layers may fetch presets.
_FAMILY_PACKAGES = ("keras_hub", "keras_cv", "keras_nlp")
#: The Keras namespaces (``keras.<name>``) a model's classes come from. Others
#: (``keras.callbacks``, ``keras.datasets``, ``keras.config``, ...) hold
#: nothing a model is built of; ``keras.src`` is where the classes live, and
#: Keras builds only its saveable classes from there.
_MODEL_NAMESPACES = frozenset({
    "", "src", "layers", "models", "initializers", "regularizers", "constraints", "losses",
    "metrics", "optimizers", "activations", "dtype_policies", "mixed_precision", "ops",
    "quantizers", "random", "utils",
})
#: The Keras namespaces a model's functions (activations, losses, ...) come
#: from; ``builtins`` marks a built-in or registered function found by name.
#: Keras resolves any public function otherwise, ``keras.utils.get_file`` and
#: ``keras.datasets.mnist.load_data`` (downloads) among them.
_FUNCTION_NAMESPACES = frozenset({
    "activations", "losses", "metrics", "ops", "initializers", "regularizers", "constraints",
    "random", "quantizers",
})


def keras_module() -> Any | None:
    """Keras, if the caller has imported it; nnsave never imports it just to look."""
    return module_if_imported("keras")


class KerasModelHandler(FormatHandler):
    """Claims Keras models; records Keras, its backend and what the model expects."""

    extra = "keras"
    required_modules: ClassVar[tuple[str, ...]] = ("keras",)
    version_strictness: ClassVar[dict[str, int]] = {"keras": 1}

    def claims(self, obj: object) -> bool:
        if isinstance(obj, ModelSnapshot):
            return obj.format_name == self.name
        keras = keras_module()
        return keras is not None and isinstance(obj, keras.Model)

    def snapshot(self, model: Any, target: Path) -> ModelSnapshot:
        """Everything a save of ``model`` to ``target`` writes, copied now into host memory.

        Writing the snapshot later (``nnsave.save(snapshot, target)``, from
        any thread) gives the file a synchronous save would give now. Takes
        about as long as copying the model's state; raises what a save of the
        model would raise about the model itself.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot a model")

    def saved_class_path(self, obj: object) -> str:
        return obj.class_path if isinstance(obj, ModelSnapshot) else class_path(obj)

    def versions(self, obj: object) -> list[str]:
        return ["numpy", "keras", *_BACKEND_LIBRARIES.get(_backend_name() or "", ())]

    def extra_versions(self, obj: object) -> dict[str, str | None]:
        return {"keras_backend": _backend_name()}

    def expects(self, obj: Any) -> dict[str, Any]:
        """Input and output names, shapes and dtypes of a built model, read without running it.

        A subclassed model has no symbolic inputs and outputs, so nothing is
        recorded for it.
        """
        if isinstance(obj, ModelSnapshot):
            return obj.expects
        facts: dict[str, Any] = {}
        for side in ("inputs", "outputs"):
            try:
                tensors = list(getattr(obj, side) or [])
            except (AttributeError, ValueError):  # a subclassed model that was never called
                continue
            names = [str(getattr(tensor, "name", "")) for tensor in tensors]
            given = getattr(obj, "output_names", None) if side == "outputs" else None
            if isinstance(given, (list, tuple)) and len(given) == len(tensors):
                names = [str(name) for name in given]  # the tensors' own are automatic
            described = []
            for tensor, name in zip(tensors, names):
                shape = getattr(tensor, "shape", None)
                if shape is None:
                    break
                entry = {
                    "shape": [None if size is None else int(size) for size in shape],
                    "dtype": str(getattr(tensor, "dtype", "")),
                }
                if name and not name.startswith("keras_tensor"):  # Keras's automatic names say nothing
                    entry = {"name": name, **entry}
                described.append(entry)
            else:
                if described:
                    facts[side] = described
        return facts

    def check_load_options(self, path: Path, options: LoadOptions, trusted_types: tuple[str, ...]) -> None:
        super().check_load_options(path, options, trusted_types)
        if options.custom_objects is not None and not isinstance(options.custom_objects, Mapping):
            raise InvalidArgumentError(
                f"{path}: custom_objects must be a dict mapping names to classes or "
                f"functions, not {type(options.custom_objects).__name__}."
            )

    def config_facts(self, config: Any, path: Path, options: LoadOptions, **extra: Any) -> FileFacts:
        """The trust facts of a model config: what it runs and what it reaches."""
        missing = unknown_classes(config, options.custom_objects)
        if missing:
            raise UnknownClassError(
                f"{path} uses {', '.join(missing)}, which this process does not know. "
                "Import the module that defines it (its classes decorated with "
                "@keras.saving.register_keras_serializable()), or pass "
                "custom_objects={'Name': Class}, then load again."
            )
        return FileFacts(runs_code=not options.safe_mode, reaches_outside=audit_config(config), **extra)


#: The libraries whose versions matter for each Keras backend.
_BACKEND_LIBRARIES = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib"), "torch": ("torch",)}


def _backend_name() -> str | None:
    keras = keras_module()
    if keras is None:
        return None
    return str(keras.config.backend())


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            yield current
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)


def audit_config(config: Any) -> tuple[str, ...]:
    """What in a Keras config safe mode must refuse, described for people.

    It finds code (``Lambda``, serialised lambdas, pickled torch modules),
    layers that reach outside the file (``TFSMLayer``, a vocabulary given as a
    path), classes of the Keras family packages (which may fetch presets),
    and classes and functions from outside the namespaces models are built
    of (``keras.utils.get_file`` would download). Unknown modules outside
    Keras are :func:`unknown_classes`'s concern.

    >>> audit_config({"class_name": "Lambda", "config": {"name": "double"}})
    ('a Lambda layer (Python code) (double)',)
    >>> audit_config({"class_name": "StringLookup", "config": {"name": "words", "vocabulary": "/etc/passwd"}})
    ("a vocabulary read from the file '/etc/passwd' (words)",)
    >>> audit_config({"module": "keras.datasets.mnist", "class_name": "function", "config": "load_data"})
    ('the function keras.datasets.mnist.load_data, which is not part of a model',)
    """
    found: list[str] = []
    for node in _walk(config):
        class_name = node.get("class_name")
        inner = node.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        label = f" ({name})" if isinstance(name, str) else ""
        if isinstance(class_name, str):
            what = _CODE_CLASSES.get(class_name) or _OUTSIDE_CLASSES.get(class_name) or _foreign(node)
            if what:
                found.append(what + label)
        if isinstance(inner, dict):
            for key in _PATH_KEYS:
                value = inner.get(key)
                if isinstance(value, str) and value:
                    found.append(f"a {key.replace('_', ' ')} read from the file {value!r}{label}")
    return tuple(dict.fromkeys(found))


def _foreign(node: dict[str, Any]) -> str | None:
    """Why a class or function entry names something no model is built of, if it does."""
    class_name, module = node.get("class_name"), node.get("module")
    if not isinstance(module, str):
        return None
    package, _, rest = module.partition(".")
    if package in _FAMILY_PACKAGES:
        return f"the class {class_name} from {module}, which may fetch files"
    if package not in _KERAS_MODULES:
        return None
    namespace = rest.partition(".")[0]
    if class_name == "function":
        if namespace in _FUNCTION_NAMESPACES:
            return None
        return f"the function {module}.{node.get('config')}, which is not part of a model"
    if namespace in _MODEL_NAMESPACES:
        return None
    return f"the class {module}.{class_name}, which is not part of a model"


def unknown_classes(config: Any, custom_objects: Mapping[str, Any] | None) -> list[str]:
    """Classes the config names from modules outside Keras that this process cannot resolve."""
    keras = keras_module()
    custom = dict(custom_objects or {})
    missing: list[str] = []
    for node in _walk(config):
        class_name, module = node.get("class_name"), node.get("module")
        if not isinstance(class_name, str) or not isinstance(module, str):
            continue
        if module == "builtins" or module.split(".")[0] in (*_KERAS_MODULES, *_FAMILY_PACKAGES):
            continue
        registered = node.get("registered_name")
        names = [n for n in (registered, class_name) if isinstance(n, str)]
        if any(n in custom for n in names):
            continue
        if keras is not None and any(keras.saving.get_registered_object(n) is not None for n in names):
            continue
        label = f"{module}.{class_name}"
        if label not in missing:
            missing.append(label)
    return missing


def layers_from_config(config: dict[str, Any]) -> list[dict[str, str]]:
    """Names and types of the top-level layers of a Sequential or functional model.

    A subclassed model's config does not list its layers, so the list is empty.
    """
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list):
        return []
    described = []
    for layer in layers:
        if isinstance(layer, dict):
            layer_config = layer.get("config")
            name = layer_config.get("name") if isinstance(layer_config, dict) else None
            described.append({"name": str(name), "type": str(layer.get("class_name"))})
    return described


@contextlib.contextmanager
def safe_mode_scope(safe_mode: bool) -> Iterator[None]:
    """Hold Keras's safe-mode flag at ``safe_mode`` for this thread, whatever the global switch says.

    ``keras.config.enable_unsafe_deserialization()`` sets a flag that Keras
    consults in preference to the ``safe_mode`` argument. Keras's own
    ``SafeModeScope`` sets the flag for the duration of a block; it lives in
    ``keras.src``, so should a release move it, the block runs without it and
    nnsave's own audit (which always runs first) still refuses what safe mode
    must refuse.
    """
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:
        yield
        return
    with SafeModeScope(safe_mode):
        yield


#: What Keras, h5py and zipfile raise for bytes or configs that are damaged.
_DAMAGE = (
    zipfile.BadZipFile, OSError, EOFError, KeyError, IndexError, AttributeError,
    RuntimeError, OverflowError, struct.error,
)


@contextlib.contextmanager
def keras_errors_explained(path: Path) -> Iterator[None]:
    """Turn what Keras raises while rebuilding a model into nnsave errors, by type.

    Each error keeps the builtin type Keras raised where nnsave has one for
    it: a ``TypeError`` (a class Keras cannot find) becomes
    :class:`UnknownClassError`, a ``ValueError`` (among them Keras's own
    safe-mode refusals) a :class:`FormatError`.
    """
    try:
        yield
    except NNSaveError:
        raise
    except TypeError as error:
        raise UnknownClassError(
            f"{path} could not be rebuilt: it names a class or function this process "
            "cannot find, or its config is damaged. Import the module that defines its "
            "custom classes (decorated with @keras.saving.register_keras_serializable()) "
            f"or pass custom_objects=..., then load again. Keras said: {_first_line(error)}"
        ) from error
    except _DAMAGE as error:
        raise FormatError(
            f"{path} is damaged: Keras could not read it ({type(error).__name__}: "
            f"{_first_line(error)}). Restore it from a backup or save it again."
        ) from None
    except ValueError as error:
        raise FormatError(
            f"{path} could not be rebuilt from its config. Keras said: {_first_line(error)} "
            "If Keras refused it in safe mode, load it with safe_mode=False only if you "
            "trust its author; otherwise restore the file or save it again."
        ) from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."

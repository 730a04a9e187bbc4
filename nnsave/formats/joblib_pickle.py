"""scikit-learn estimators, numpy arrays and other Python objects as ``.joblib`` files.

joblib is pickle with efficient storage of numpy arrays. Loading a pickle runs
whatever code the file names, which is why :mod:`nnsave.trust` must approve
every read, and why :meth:`JoblibHandler.describe` only looks at the header.
"""

from __future__ import annotations

import io
import pickle
import struct
import types
import zlib
from pathlib import Path
from typing import Any

from ..errors import FormatError, UnsupportedObjectError
from ..storage import AtomicWrite, Digest
from . import FormatHandler, LoadOptions, is_keras_object

__all__ = ["JoblibHandler", "PythonObjectHandler"]

# The first bytes of a joblib file: a raw pickle, or one of joblib's compressors.
_SIGNATURES = {
    b"\x80": None,
    b"\x78": "zlib",
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"\x5d\x00\x00": "lzma",
    b"\x04\x22\x4d\x18": "lz4",
}
_UNPICKLABLE_TYPES = (
    types.ModuleType,
    types.GeneratorType,
    types.CoroutineType,
    types.FrameType,
    io.IOBase,
)


class PythonObjectHandler(FormatHandler):
    """What the formats for estimators, arrays and plain objects have in common."""

    def claims(self, obj: object) -> bool:
        return not is_keras_object(obj) and not isinstance(obj, _UNPICKLABLE_TYPES)

    def strictness_for(self, saved_class_path: str) -> dict[str, int]:
        strictness = dict(self.version_strictness)
        if saved_class_path.startswith("sklearn."):
            # scikit-learn supports no loading across versions, not even patch releases.
            strictness["scikit-learn"] = 3
        return strictness


class JoblibHandler(PythonObjectHandler):
    name = "joblib"
    suffixes = (".joblib",)
    version_strictness = {"numpy": 1, "joblib": 1}

    def write(
        self, obj: Any, transaction: AtomicWrite, target: Path, *, compress: Any
    ) -> Digest:
        import joblib

        with transaction.stream(target) as stream:
            try:
                joblib.dump(obj, stream, compress=0 if compress is None else compress)
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                raise UnsupportedObjectError(
                    f"{target}: the {type(obj).__name__} could not be pickled ({error}). "
                    "Nothing was written and any previous file is unchanged. Remove "
                    "or replace the part that cannot be pickled (open files, lambdas, "
                    "locks, generators) and save again."
                ) from error
        return stream.digest

    def check_signature(self, path: Path) -> None:
        self._compression(path)

    def runs_code_on_load(self, options: LoadOptions) -> bool:
        return True

    def read(self, path: Path, options: LoadOptions) -> Any:
        import joblib

        if options.mmap_mode is not None and self._compression(path) is not None:
            raise ValueError(
                f"{path} is compressed, and a compressed file cannot be memory-mapped. "
                "Load it with mmap_mode=None, or re-save it with compress=None."
            )
        try:
            return joblib.load(path, mmap_mode=options.mmap_mode)
        except (EOFError, pickle.UnpicklingError, IndexError, struct.error, zlib.error) as error:
            raise FormatError(
                f"{path} is truncated or damaged ({type(error).__name__}: {error}). "
                "Restore it from a backup or save it again."
            ) from None
        except ValueError as error:
            # joblib reports a short read of array data as a ValueError.
            if "EOF" not in str(error) and "buffer" not in str(error):
                raise
            raise FormatError(f"{path} is truncated or damaged ({error}). Restore it or save it again.") from None

    def describe(self, path: Path) -> dict[str, Any]:
        return {"compression": self._compression(path)}

    @staticmethod
    def _compression(path: Path) -> str | None:
        with open(path, "rb") as handle:
            head = handle.read(8)
        for signature, compression in _SIGNATURES.items():
            if head.startswith(signature):
                return compression
        hint = (
            " It looks like a zip archive; a Keras model belongs in a .keras file."
            if head.startswith(b"PK")
            else ""
        )
        raise FormatError(
            f"{path} is not a joblib file: it starts with {head[:4]!r}, which is neither "
            f"a pickle nor a joblib compressor's header.{hint}"
        )

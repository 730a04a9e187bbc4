"""scikit-learn estimators, numpy arrays and other Python objects as ``.joblib`` files.

joblib is pickle with efficient storage of numpy arrays. Loading a pickle runs
whatever code the file names, which is why :mod:`nnsave.trust` must approve
every read, and why :meth:`JoblibHandler.describe` only looks at the header.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path
from typing import Any

from ..errors import FormatError, InvalidArgumentError, MissingDependencyError, UnsupportedObjectError
from ..hashing import Digest
from ..storage import Transaction
from ._base import FileFacts, LoadOptions, Payload, SaveOptions
from ._python import PythonObjectHandler, read_failure

__all__ = ["JoblibHandler", "COMPRESSION_LEVELS", "MMAP_MODES"]

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
#: The compressors joblib ships with (lz4 needs the lz4 package).
_COMPRESSORS = ("zlib", "gzip", "bz2", "lzma", "xz", "lz4")
COMPRESSION_LEVELS = range(0, 10)
MMAP_MODES = ("r", "r+", "c")


class JoblibHandler(PythonObjectHandler):
    name = "joblib"
    suffixes = (".joblib",)
    required_modules = ("joblib",)
    version_strictness = {"numpy": 1, "joblib": 1}

    def check_save_options(self, target: Path, options: SaveOptions) -> None:
        compress = options.compress
        if compress is None:
            return
        compressor = _compressor(compress)
        if compressor is None:
            raise InvalidArgumentError(
                f"{target}: compress={compress!r} is not a joblib compression. Give a level "
                f"0-9 (3 is a good trade-off), a compressor name ({', '.join(_COMPRESSORS)}), "
                "or a (name, level) pair such as ('lzma', 6). Nothing was written."
            )
        if compressor == "lz4" and importlib.util.find_spec("lz4") is None:
            raise MissingDependencyError(
                f"{target}: compress={compress!r} needs the lz4 package, which is not "
                "installed. Install it with: pip install lz4; or choose zlib, gzip, bz2, "
                "lzma or xz. Nothing was written."
            )

    def write(self, obj: Any, transaction: Transaction, target: Path, options: SaveOptions) -> Digest:
        import joblib

        with transaction.stream(target) as stream:
            try:
                joblib.dump(obj, stream, compress=0 if options.compress is None else options.compress)
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                raise UnsupportedObjectError(
                    f"{target}: the {type(obj).__name__} could not be pickled ({error}). "
                    "Nothing was written and any previous file is unchanged. Remove "
                    "or replace the part that cannot be pickled (open files, lambdas, "
                    "locks, generators) and save again."
                ) from error
        return stream.digest

    def check_load_options(self, path: Path, options: LoadOptions, trusted_types: tuple[str, ...]) -> None:
        if options.mmap_mode is not None and options.mmap_mode not in MMAP_MODES:
            raise InvalidArgumentError(
                f"{path}: mmap_mode={options.mmap_mode!r} is not one of {', '.join(map(repr, MMAP_MODES))} "
                "(or None, to read the arrays into memory)."
            )
        if trusted_types:
            raise InvalidArgumentError(
                f"{path}: trusted_types applies to .skops files only. A .joblib file is a "
                "pickle: vouch for it with trusted=True, key= or expected_sha256=."
            )

    def check_magic(self, head: bytes, path: Path) -> None:
        _compression(head, path)

    def facts(self, payload: Payload, options: LoadOptions) -> FileFacts:
        if options.mmap_mode is not None and _compression(payload.head(8), payload.path) is not None:
            raise InvalidArgumentError(
                f"{payload.path} is compressed, and a compressed file cannot be "
                "memory-mapped. Load it with mmap_mode=None, or save it again with compress=None."
            )
        return FileFacts(runs_code=True)

    def describe(self, payload: Payload) -> dict[str, Any]:
        return {"compression": _compression(payload.head(8), payload.path)}

    def read(self, payload: Payload, options: LoadOptions) -> Any:
        import joblib

        if options.mmap_mode is None:
            source: Any = payload.reader()
        else:
            # numpy.memmap needs a file name; this one opens the verified file,
            # not whatever the caller's path names by now.
            source = payload.mappable_name()
            if source is None:
                raise InvalidArgumentError(
                    f"{payload.path}: this platform cannot memory-map a verified file "
                    "(it has neither /proc/self/fd nor /dev/fd). Load it with mmap_mode=None."
                )
        try:
            return joblib.load(source, mmap_mode=options.mmap_mode)
        except Exception as error:  # noqa: BLE001 - unpickling runs the file's own code, which may raise anything
            raise read_failure(payload.path, error) from None


def _compressor(compress: Any) -> str | None:
    """The compressor ``compress`` asks joblib for, or None if joblib would not accept it.

    A bare level means zlib; booleans are refused, though joblib takes them,
    so that one argument does not take four kinds of value.
    """
    if _is_level(compress):
        return "zlib"
    if isinstance(compress, str):
        return compress if compress in _COMPRESSORS else None
    if isinstance(compress, tuple) and len(compress) == 2 and _is_level(compress[1]):
        return _compressor(compress[0]) if isinstance(compress[0], str) else None
    return None


def _is_level(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in COMPRESSION_LEVELS


def _compression(head: bytes, path: Path) -> str | None:
    for signature, compression in _SIGNATURES.items():
        if head.startswith(signature):
            return compression
    hint = " It looks like a zip archive; a Keras model belongs in a .keras file." if head.startswith(b"PK") else ""
    raise FormatError(
        f"{path} is not a joblib file: it starts with {head[:4]!r}, which is neither "
        f"a pickle nor a joblib compressor's header.{hint}"
    )

"""scikit-learn estimators as ``.skops`` files, loaded without running pickled code.

skops stores an object as a zip of a JSON schema plus array data and rebuilds
it only from types it knows to be harmless. Any other type found in the file
must be approved by name, a decision :mod:`nnsave.trust` takes; this handler
only reports the types (without building anything) and passes on the approval.

skops can write files it can never read back: a lambda or a function defined
inside another is stored by a name that no module has, some types it writes
have no loader, and some come back changed (a ``collections.deque`` comes back
empty). Saving therefore refuses such objects before anything is written:
code references are found by walking the object, and the rest by loading the
bytes back in memory and comparing (see :meth:`SkopsHandler.write`).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from ..errors import FormatError, InvalidArgumentError, UnsupportedObjectError
from ..hashing import Digest
from ..storage import Transaction
from ._base import FileFacts, LoadOptions, Payload, SaveOptions
from ._python import PythonObjectHandler, code_references, first_difference, quoted, read_failure
from ._zip import check_zip_magic, json_object, measure, open_zip, read_member

__all__ = ["SkopsHandler", "SCHEMA_MEMBER"]

SCHEMA_MEMBER = "schema.json"
_LEVELS = range(0, 10)
#: The schema of a large forest is a few megabytes; a larger one is no file skops wrote.
_MAX_SCHEMA_BYTES = 64 << 20


class SkopsHandler(PythonObjectHandler):
    name = "skops"
    suffixes = (".skops",)
    required_modules = ("skops.io",)
    version_strictness = {"numpy": 1, "skops": 2}

    def check_save_options(self, target: Path, options: SaveOptions) -> None:
        compress = options.compress
        if compress is None or (isinstance(compress, int) and not isinstance(compress, bool) and compress in _LEVELS):
            return
        raise InvalidArgumentError(
            f"{target}: compress={compress!r} is not a zip compression level for a .skops "
            "file. Give a level 0-9 or leave compress=None. Nothing was written."
        )

    def check_saveable(self, obj: object, target: Path) -> list[str]:
        nameless = code_references(obj).nameless
        if nameless:
            raise UnsupportedObjectError(
                f"{target}: the object uses {', '.join(nameless)}, a lambda or a function "
                "defined inside another function. skops stores functions by name, so the "
                "file could never be loaded. Replace it with a function defined at the top "
                "level of a module, or save to .joblib instead. Nothing was written."
            )
        return super().check_saveable(obj, target)

    def write(self, obj: Any, transaction: Transaction, target: Path, options: SaveOptions) -> Digest:
        """Stage ``obj`` as a ``.skops`` file, once its bytes have loaded back equal to it.

        The check rebuilds the object from the bytes in memory, approving the
        types skops reports. They are the types of the caller's own object, so
        building them runs no code the caller's process does not already
        hold. Then :func:`first_difference` compares the two, value for value.
        It costs one load (the time loading the file will take) and one walk
        over both objects, and the memory of a second copy of the object
        while the check lasts.
        """
        import skops.io

        settings = {"compression": zipfile.ZIP_DEFLATED, "compresslevel": options.compress} if options.compress else {}
        try:
            data = skops.io.dumps(obj, **settings)
        except Exception as error:  # noqa: BLE001 - skops runs each object's own reduce and getstate code
            raise _cannot_hold(target, obj, f"skops cannot store it ({quoted(error)})") from None
        try:
            rebuilt = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
        except Exception as error:  # noqa: BLE001 - rebuilding runs each type's own setstate code
            raise _cannot_hold(target, obj, f"skops can store it but not load it back ({quoted(error)})") from None
        difference = first_difference(obj, rebuilt)
        if difference is not None:
            raise _cannot_hold(target, obj, f"skops loads it back changed ({difference})")
        return transaction.write_bytes(target, data)

    def check_load_options(self, path: Path, options: LoadOptions, trusted_types: tuple[str, ...]) -> None:
        if options.mmap_mode is not None:
            raise InvalidArgumentError(
                f"{path}: mmap_mode={options.mmap_mode!r} applies to .joblib files only; "
                "a .skops file cannot be memory-mapped. Leave mmap_mode=None."
            )

    def check_magic(self, head: bytes, path: Path) -> None:
        check_zip_magic(head, path, "a skops file", "If it is a joblib or pickle file, rename it to .joblib.")

    def facts(self, payload: Payload, options: LoadOptions) -> FileFacts:
        with open_zip(payload, required_member=SCHEMA_MEMBER, kind="skops file") as archive:
            expansion, hostile = measure(archive, payload.size)
            if hostile:
                return FileFacts(runs_code=False, hostile_names=hostile, expansion=expansion)
            outline = _outline(archive, payload.path)
        return FileFacts(runs_code=False, unapproved_types=_untrusted_types(outline, payload.path), expansion=expansion)

    def describe(self, payload: Payload) -> dict[str, Any]:
        """The types to approve; without skops installed, says which extra lists them."""
        with open_zip(payload, required_member=SCHEMA_MEMBER, kind="skops file") as archive:
            hostile = measure(archive, payload.size)[1]
            if hostile:
                return {"hostile_members": list(hostile)}
            outline = _outline(archive, payload.path)
        try:
            import skops.io  # noqa: F401 - only to learn whether the types can be listed
        except ModuleNotFoundError:
            return {"untrusted_types": f'unknown: pip install "nnsave[{self.extra}]" to list them'}
        return {"untrusted_types": list(_untrusted_types(outline, payload.path)) or "none"}

    def read(self, payload: Payload, options: LoadOptions) -> Any:
        import skops.io

        try:
            return skops.io.load(payload.reader(), trusted=list(options.approved_types))
        except Exception as error:  # noqa: BLE001 - building runs the approved types' own code
            raise read_failure(payload.path, error) from None


def _outline(archive: zipfile.ZipFile, path: Path) -> bytes:
    """The archive with its schema and every other member empty: what skops audits.

    Which types a file holds is written in its schema alone, but skops's
    audit reads every member; auditing the file itself would unpack all of
    its array data (a zip bomb's too) before trust has seen how far it
    unpacks. The schema is checked defensively first (size, nesting, numbers).
    """
    schema = read_member(archive, SCHEMA_MEMBER, path, limit=_MAX_SCHEMA_BYTES)
    json_object(schema, SCHEMA_MEMBER, path)
    outline = io.BytesIO()
    with zipfile.ZipFile(outline, "w") as copy:
        for name in dict.fromkeys(archive.namelist()):
            copy.writestr(name, schema if name == SCHEMA_MEMBER else b"")
    return outline.getvalue()


def _untrusted_types(outline: bytes, path: Path) -> tuple[str, ...]:
    """The types outside skops's safe set that the file's schema names."""
    import skops.io

    try:
        return tuple(sorted(skops.io.get_untrusted_types(data=outline)))
    except Exception as error:  # noqa: BLE001 - skops reads a hostile schema with few checks of its own
        raise FormatError(
            f"{path} is not a readable skops file: its {SCHEMA_MEMBER} does not describe "
            f"objects skops knows ({quoted(error)}). Restore it from a "
            "backup or save it again."
        ) from None


def _cannot_hold(target: Path, obj: object, why: str) -> UnsupportedObjectError:
    return UnsupportedObjectError(
        f"{target}: a .skops file cannot hold this {type(obj).__name__}: {why}. Save it "
        "as .joblib instead (a pickle, which loads only where you vouch for it). "
        "Nothing was written."
    )

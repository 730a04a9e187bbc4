"""scikit-learn estimators as ``.skops`` files, loaded without running pickled code.

skops stores an object as a zip of a JSON schema plus array data and rebuilds
it only from types it knows to be harmless. Any other type found in the file
must be approved by name, a decision :mod:`nnsave.trust` takes; this handler
only reports the types (without loading anything) and passes on the approval.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ..errors import FormatError, InvalidArgumentError, UnknownClassError, UnsupportedObjectError
from ..hashing import Digest
from ..storage import Transaction
from ._base import FileFacts, LoadOptions, Payload, SaveOptions
from ._python import PythonObjectHandler, code_references
from ._zip import check_zip_magic, measure, open_zip

__all__ = ["SkopsHandler", "SCHEMA_MEMBER"]

SCHEMA_MEMBER = "schema.json"
_LEVELS = range(0, 10)


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
                "level of a module, then save again. Nothing was written."
            )
        return super().check_saveable(obj, target)

    def write(self, obj: Any, transaction: Transaction, target: Path, options: SaveOptions) -> Digest:
        import skops.io

        settings = {} if not options.compress else {"compression": zipfile.ZIP_DEFLATED, "compresslevel": options.compress}
        with transaction.stream(target) as stream:
            try:
                skops.io.dump(obj, stream, **settings)
            except (TypeError, ValueError, AttributeError) as error:
                raise UnsupportedObjectError(
                    f"{target}: skops cannot store this {type(obj).__name__} ({error}). "
                    "Save it as .joblib instead. Nothing was written."
                ) from error
        return stream.digest

    def check_load_options(self, path: Path, options: LoadOptions, trusted_types: tuple[str, ...]) -> None:
        if options.mmap_mode is not None:
            raise InvalidArgumentError(
                f"{path}: mmap_mode={options.mmap_mode!r} applies to .joblib files only; "
                "a .skops file cannot be memory-mapped. Leave mmap_mode=None."
            )

    def check_magic(self, head: bytes, path: Path) -> None:
        check_zip_magic(head, path, "a skops file", "If it is a joblib or pickle file, rename it to .joblib.")

    def facts(self, payload: Payload, options: LoadOptions) -> FileFacts:
        import skops.io

        with open_zip(payload, required_member=SCHEMA_MEMBER, kind="skops file") as archive:
            expansion, hostile = measure(archive, payload.size)
        if hostile:
            return FileFacts(runs_code=False, hostile_names=hostile, expansion=expansion)
        try:
            # skops builds a tree from the schema and audits it; nothing is constructed.
            untrusted = tuple(sorted(skops.io.get_untrusted_types(file=payload.reader())))
        except Exception as error:  # noqa: BLE001 - skops raises many types for malformed schemas
            raise FormatError(f"{payload.path} is not a readable skops file ({type(error).__name__}: {error}).") from None
        return FileFacts(runs_code=False, unapproved_types=untrusted, expansion=expansion)

    def describe(self, payload: Payload) -> dict[str, Any]:
        facts = self.facts(payload, LoadOptions())
        return {"untrusted_types": list(facts.unapproved_types)}

    def read(self, payload: Payload, options: LoadOptions) -> Any:
        import skops.io

        try:
            return skops.io.load(payload.reader(), trusted=list(options.approved_types))
        except (AttributeError, ModuleNotFoundError) as error:
            raise UnknownClassError(
                f"{payload.path} refers to a class or function that this process cannot "
                f"find ({type(error).__name__}: {error}). Import the module that defines it "
                "before loading."
            ) from None

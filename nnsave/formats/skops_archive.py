"""scikit-learn estimators as ``.skops`` files, loaded without running pickled code.

skops stores an object as a zip of a JSON schema plus array data and rebuilds
it only from types it knows to be harmless. Any other type found in the file
must be approved by name, a decision :mod:`nnsave.trust` takes; this handler
only reports the types (without loading anything) and passes on the approval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..storage import AtomicWrite, Digest
from . import LoadOptions
from .joblib_pickle import PythonObjectHandler
from .zip_audit import open_audited_zip, require_zip

__all__ = ["SkopsHandler", "SCHEMA_MEMBER"]

SCHEMA_MEMBER = "schema.json"


class SkopsHandler(PythonObjectHandler):
    name = "skops"
    suffixes = (".skops",)
    version_strictness = {"numpy": 1, "skops": 2}

    def write(
        self, obj: Any, transaction: AtomicWrite, target: Path, *, compress: Any
    ) -> Digest:
        import skops.io

        options = {} if compress is None else {"compression": 8, "compresslevel": int(compress)}
        with transaction.stream(target) as stream:
            skops.io.dump(obj, stream, **options)
        return stream.digest

    def check_signature(self, path: Path) -> None:
        require_zip(path, "a skops file", "If it is a joblib or pickle file, rename it to .joblib.")

    def runs_code_on_load(self, options: LoadOptions) -> bool:
        return False

    def types_needing_trust(self, path: Path) -> list[str]:
        import skops.io

        open_audited_zip(path, required_member=SCHEMA_MEMBER, kind="skops file", suffix=".skops").close()
        try:
            return sorted(skops.io.get_untrusted_types(file=path))
        except Exception as error:  # skops raises many types for malformed schemas
            raise FormatError(f"{path} is not a readable skops file: {error}") from None

    def read(self, path: Path, options: LoadOptions) -> Any:
        import skops.io

        return skops.io.load(path, trusted=list(options.approved_types))

    def describe(self, path: Path) -> dict[str, Any]:
        return {"untrusted_types": self.types_needing_trust(path)}

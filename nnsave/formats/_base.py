"""What every format handler implements, and what it is handed.

A handler knows one file format. It writes objects into what the storage
layer gives it (a stream or a staging path), reports facts about a file
without deserialising it, and deserialises a file only when asked, after
:mod:`nnsave.trust` has approved. It never decides whether a file may be
loaded, never picks file names, and never opens the path it is told about:
it reads the bytes in the :class:`Payload` it is handed, which are the bytes
that were verified.
"""

from __future__ import annotations

import importlib
import io
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from ..errors import InvalidArgumentError, MissingDependencyError
from ..hashing import Digest
from ..storage import RegularFile, Transaction

__all__ = [
    "SaveOptions",
    "LoadOptions",
    "Expansion",
    "FileFacts",
    "Payload",
    "FormatHandler",
    "class_path",
    "module_if_imported",
]


@dataclass(frozen=True)
class SaveOptions:
    """What the caller of :func:`nnsave.save` asked for, as handlers see it."""

    compress: Any = None


@dataclass(frozen=True)
class LoadOptions:
    """What the caller of :func:`nnsave.load` asked for, as handlers see it."""

    safe_mode: bool = True
    compile: bool = True
    custom_objects: Mapping[str, Any] | None = None
    mmap_mode: str | None = None
    #: Types outside a format's own safe set that trust approved (skops).
    approved_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expansion:
    """How far a zip archive unpacks: the facts a zip-bomb decision needs."""

    archive_bytes: int
    unpacked_bytes: int
    members: int
    #: The largest ratio of unpacked to packed size of any member over 1 MiB.
    worst_member_ratio: float = 1.0


@dataclass(frozen=True)
class FileFacts:
    """What a handler learned about a file without deserialising it.

    These are the format's half of the facts :func:`nnsave.trust.decide`
    weighs; the handler reports them and decides nothing.
    """

    #: Loading, in the mode the caller asked for, would execute code from the file.
    runs_code: bool
    #: Types that loading would build only with the caller's approval (skops).
    unapproved_types: tuple[str, ...] = ()
    #: What safe mode must refuse: code in the config, layers that reach outside
    #: the file (another SavedModel, a vocabulary file), unknown modules.
    reaches_outside: tuple[str, ...] = ()
    #: Member names that point outside a zip archive (``../``): never loaded.
    hostile_names: tuple[str, ...] = ()
    expansion: Expansion | None = None


class _ViewReader(io.RawIOBase):
    """A read-only, seekable raw stream over a memoryview: no copy until read."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        chunk = self._view[self._position : self._position + len(target)]
        target[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)


@dataclass
class Payload:
    """The verified bytes of one file, as a handler reads them.

    Attributes
    ----------
    path : pathlib.Path
        The path the caller gave, for messages only: never opened again.
    view : memoryview
        Every byte of the file, read or mapped once (see
        :meth:`nnsave.storage.RegularFile.contents`).
    handle : RegularFile or None
        The open file, for libraries that memory-map by name
        (:meth:`mappable_name`).
    """

    path: Path
    view: memoryview
    handle: RegularFile | None = None
    _readers: list[io.BufferedReader] = field(default_factory=list, repr=False)

    @property
    def size(self) -> int:
        return len(self.view)

    def head(self, count: int) -> bytes:
        return bytes(self.view[:count])

    def reader(self) -> BinaryIO:
        """A new seekable binary stream over the bytes, positioned at the start."""
        reader = io.BufferedReader(_ViewReader(self.view), buffer_size=1 << 20)
        self._readers.append(reader)
        return reader

    def mappable_name(self) -> str | None:
        """A file name that opens exactly these bytes again (for ``numpy.memmap``)."""
        return self.handle.descriptor_path() if self.handle is not None else None

    def release(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers.clear()
        self.view.release()


class FormatHandler(ABC):
    """The interface every format implements."""

    #: Short name written into manifests, e.g. ``"keras"``.
    name: ClassVar[str]
    #: File suffixes this handler owns, lower case, e.g. ``(".keras",)``.
    suffixes: ClassVar[tuple[str, ...]]
    #: The pip extra that installs what this format needs: ``nnsave[<extra>]``.
    extra: ClassVar[str]
    #: Modules that saving and loading need (``describe`` and ``facts`` need none).
    required_modules: ClassVar[tuple[str, ...]] = ()
    #: Library → how many leading release numbers must agree between the
    #: versions that saved a file and the installed ones (see manifest.py).
    version_strictness: ClassVar[dict[str, int]] = {}

    # -- saving --------------------------------------------------------------

    @abstractmethod
    def claims(self, obj: object) -> bool:
        """True if this handler is the right one for ``obj``."""

    def check_save_options(self, target: Path, options: SaveOptions) -> None:
        """Raise :class:`InvalidArgumentError` for an option this format cannot honour."""
        if options.compress is not None:
            raise InvalidArgumentError(
                f"{target}: compress={options.compress!r} applies to .joblib and .skops "
                f"files only; a {self.suffixes[0]} file is stored as it is written. "
                "Leave compress=None. Nothing was written."
            )

    def check_saveable(self, obj: object, target: Path) -> list[str]:
        """Raise before anything is written if ``obj`` could be saved but never loaded.

        Returns warnings for the caller: things that will load here but
        perhaps not elsewhere.
        """
        return []

    @abstractmethod
    def write(self, obj: Any, transaction: Transaction, target: Path, options: SaveOptions) -> Digest:
        """Stage ``obj`` as ``target`` inside ``transaction``; return the staged digest."""

    def saved_class_path(self, obj: object) -> str:
        """``module.QualifiedName`` of the class whose object ``obj`` saves, for the manifest."""
        return class_path(obj)

    def versions(self, obj: object) -> list[str]:
        """The libraries whose versions the manifest records for ``obj``, beyond Python's."""
        return list(self.version_strictness)

    def extra_versions(self, obj: object) -> dict[str, str | None]:
        """Version facts that are not plain library versions (Keras's backend, say)."""
        return {}

    def expects(self, obj: object) -> dict[str, Any]:
        """What the object expects and returns, read without running it."""
        return {}

    # -- reading -------------------------------------------------------------

    def check_load_options(self, path: Path, options: LoadOptions, trusted_types: tuple[str, ...]) -> None:
        """Raise :class:`InvalidArgumentError` for an option that does not apply here."""
        if options.mmap_mode is not None:
            raise InvalidArgumentError(
                f"{path}: mmap_mode={options.mmap_mode!r} applies to .joblib files only; "
                f"a {self.suffixes[0]} file cannot be memory-mapped. Leave mmap_mode=None."
            )
        if trusted_types:
            raise InvalidArgumentError(
                f"{path}: trusted_types applies to .skops files only; a {self.suffixes[0]} "
                "file has no types to approve. Leave it out."
            )

    @abstractmethod
    def check_magic(self, head: bytes, path: Path) -> None:
        """Raise :class:`nnsave.FormatError` unless ``head`` (the first bytes) fits this format."""

    @abstractmethod
    def facts(self, payload: Payload, options: LoadOptions) -> FileFacts:
        """What trust needs to know about the file, learned without deserialising it."""

    @abstractmethod
    def describe(self, payload: Payload) -> dict[str, Any]:
        """Facts for :func:`nnsave.inspect`, learned without deserialising the file."""

    @abstractmethod
    def read(self, payload: Payload, options: LoadOptions) -> Any:
        """Deserialise the payload. Only called after trust approved it."""

    def strictness_for(self, saved_class_path: str) -> dict[str, int]:
        """The version comparisons that matter for a saved object of this class."""
        return dict(self.version_strictness)

    # -- dependencies ----------------------------------------------------------

    def require_modules(self, path: Path, action: str) -> None:
        """Import what this format needs, or say which extra to install."""
        for module in self.required_modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as error:
                raise MissingDependencyError(
                    f"{action} {path} needs the {module} package, which is not installed "
                    f"({error.name} is missing). Install it with: "
                    f'pip install "nnsave[{self.extra}]"'
                ) from None


def class_path(obj: object) -> str:
    """``module.QualifiedName`` of ``obj``'s class."""
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def module_if_imported(name: str) -> Any | None:
    """The module ``name`` if the caller has imported it; nnsave never imports it just to look."""
    return sys.modules.get(name)

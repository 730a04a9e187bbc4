"""Signing keys: which key signs a save, which key a load accepts, and the per-user key.

Every save signs its manifest with HMAC-SHA256. Unless told otherwise, the
key is a per-user secret that nnsave creates on first use: 32 random bytes in
a file only its owner can read, at ``<user config dir>/nnsave/signing.key``
(``~/.config/nnsave/signing.key`` on Linux; ``nnsave key`` prints the place).
``NNSAVE_KEY_FILE`` names another file. A signature under that key is how a
bare ``nnsave.load(path)`` knows that you wrote a file, and may therefore run
the code a pickle holds.

To share files within a team, share a key instead: ``key=`` on save and load,
or the ``NNSAVE_KEY`` environment variable, replaces the per-user key on both
sides.

What a key cannot do: anyone who can set your environment or replace your
key file can also change your code (``PYTHONPATH``), so nnsave does not try
to defend against them. It does refuse a key file that someone else owns or
can read, because then someone else could sign.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from . import storage
from .errors import KeyFileError
from .manifest import Manifest, Signature

__all__ = [
    "KEY_VARIABLE",
    "KEY_FILE_VARIABLE",
    "KeySource",
    "SigningKey",
    "user_key_path",
    "resolve_key",
    "signature_of",
    "SignatureStatus",
    "check_signature",
    "sign",
]

#: Holds a shared key (text or hex) that replaces the per-user key.
KEY_VARIABLE = "NNSAVE_KEY"
#: Names the per-user key file, in place of the default location.
KEY_FILE_VARIABLE = "NNSAVE_KEY_FILE"
_KEY_BYTES = 32
_MAX_KEY_FILE_BYTES = 4096
_ID_CONTEXT = b"nnsave signing key id v1\x00"


class KeySource(enum.Enum):
    """Where the key in use came from."""

    ARGUMENT = "key= argument"
    ENVIRONMENT = f"{KEY_VARIABLE} environment variable"
    USER_FILE = "your per-user key file"


@dataclass(frozen=True)
class SigningKey:
    """A key, where it came from, and its public identifier."""

    secret: bytes
    source: KeySource
    location: Path | None = None

    @property
    def key_id(self) -> str:
        """16 hex digits that name the key without revealing it."""
        return hashlib.sha256(_ID_CONTEXT + self.secret).hexdigest()[:16]

    @property
    def named_by_caller(self) -> bool:
        """True for a key the caller chose (argument or environment), not the default."""
        return self.source is not KeySource.USER_FILE

    def describe(self) -> str:
        """The key in words, by its id: never its secret, and not its file's path.

        The path differs from one machine to the next; ``nnsave key`` prints it.
        """
        words = {
            KeySource.ARGUMENT: "the key passed as key=",
            KeySource.ENVIRONMENT: f"the key in {KEY_VARIABLE}",
            KeySource.USER_FILE: "your own key",
        }[self.source]
        return f"{words} (id {self.key_id})"


def user_key_path() -> Path:
    """Where the per-user key lives: ``$NNSAVE_KEY_FILE``, else the user's config directory.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"NNSAVE_KEY_FILE": "/keys/mine.key"}):
    ...     print(user_key_path().as_posix())
    /keys/mine.key
    """
    explicit = os.environ.get(KEY_FILE_VARIABLE)
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("nnsave", appauthor=False)) / "signing.key"


def resolve_key(key: bytes | str | None, *, create: bool) -> SigningKey | None:
    """The key to sign or verify with: ``key``, else ``NNSAVE_KEY``, else the user's key.

    Parameters
    ----------
    key : bytes or str, optional
        A key the caller passed.
    create : bool
        Create the per-user key if it does not exist yet (saves do; loads
        do not, since a load with no key can only find nothing signed).

    Returns
    -------
    SigningKey or None
        None only when no key is named and the per-user key does not exist
        and ``create`` is False.

    Raises
    ------
    TypeError
        ``key`` is neither ``str`` nor ``bytes``, or is empty.
    KeyFileError
        The per-user key file is unsafe or unreadable.
    """
    if key is not None:
        return SigningKey(_as_bytes(key, "key"), KeySource.ARGUMENT)
    from_environment = os.environ.get(KEY_VARIABLE)
    if from_environment:
        return SigningKey(_as_bytes(from_environment, KEY_VARIABLE), KeySource.ENVIRONMENT)
    location = user_key_path()
    secret = _read_user_key(location)
    if secret is None and create:
        storage.create_private_file(location, os.urandom(_KEY_BYTES).hex().encode("ascii") + b"\n")
        secret = _read_user_key(location)
    if secret is None:
        return None
    return SigningKey(secret, KeySource.USER_FILE, location)


def signature_of(document_bytes: bytes, key: SigningKey) -> str:
    """HMAC-SHA256 of ``document_bytes`` under ``key``, as 64 hex digits."""
    return hmac.new(key.secret, document_bytes, hashlib.sha256).hexdigest()


def _as_bytes(key: bytes | str, name: str) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or not key:
        raise TypeError(f"{name} must be a non-empty str or bytes, not {type(key).__name__}.")
    return key


def _read_user_key(location: Path) -> bytes | None:
    try:
        handle = storage.open_regular(location)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise KeyFileError(f"Cannot read the signing key {location}: {error}. Fix its permissions.") from None
    with handle:
        _refuse_unsafe(location, handle.status)
        try:
            text = handle.read_all(_MAX_KEY_FILE_BYTES).decode("ascii").strip()
            secret = bytes.fromhex(text)
        except ValueError:
            raise KeyFileError(
                f"The signing key {location} is not a key nnsave wrote (64 hex digits). "
                "Move it aside; nnsave creates a new one on the next save."
            ) from None
    if len(secret) < 16:
        raise KeyFileError(f"The signing key {location} is too short. Move it aside and save again.")
    return secret


def _refuse_unsafe(location: Path, status: os.stat_result) -> None:
    if os.name == "nt":
        return  # Windows keeps permissions in ACLs; the profile folder is private
    if status.st_uid != os.geteuid():
        raise KeyFileError(
            f"Refusing the signing key {location}: it belongs to user id {status.st_uid}, "
            "not to you, so someone else could sign files as you. Remove it; nnsave "
            "creates a new one on the next save."
        )
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"Refusing the signing key {location}: other users can read or change it "
            f"(mode {stat.S_IMODE(status.st_mode):o}), so they could sign files as you. "
            f"Run: chmod 600 {location}"
        )


class SignatureStatus(enum.Enum):
    """What checking a manifest's signature against a key found."""

    #: Signed with the key in use, and unchanged since.
    VALID = "signed with your key"
    #: Signed, but with another key.
    OTHER_KEY = "signed with another key"
    #: Signed with the key in use, but changed after signing (or forged).
    INVALID = "signature does not match"
    #: The manifest carries no signature.
    UNSIGNED = "unsigned"
    #: No key to check with, because none was named and there is no per-user key yet.
    NO_KEY = "not checked (no key)"
    #: There is no manifest to carry a signature.
    NO_MANIFEST = "no manifest"


def check_signature(manifest: Manifest | None, key: SigningKey | None) -> SignatureStatus:
    """Compare ``manifest``'s signature with ``key``; a pure function.

    Examples
    --------
    >>> from nnsave.manifest import Manifest, Signature
    >>> key = SigningKey(b"k" * 32, KeySource.ARGUMENT)
    >>> plain = Manifest("joblib", 3, {"sha256": "0" * 64}, "0.3", "t", {}, "builtins.list")
    >>> check_signature(plain, key)
    <SignatureStatus.UNSIGNED: 'unsigned'>
    >>> signed = plain.with_signature(Signature(signature_of(plain.signed_bytes(), key), key.key_id))
    >>> check_signature(signed, key)
    <SignatureStatus.VALID: 'signed with your key'>
    """
    if manifest is None:
        return SignatureStatus.NO_MANIFEST
    if manifest.signature is None:
        return SignatureStatus.UNSIGNED
    if key is None:
        return SignatureStatus.NO_KEY
    if manifest.signature.key_id is not None and manifest.signature.key_id != key.key_id:
        return SignatureStatus.OTHER_KEY
    if hmac.compare_digest(signature_of(manifest.signed_bytes(), key), manifest.signature.value):
        return SignatureStatus.VALID
    # A schema-1 signature names no key, so a mismatch may be another key as well.
    return SignatureStatus.INVALID if manifest.signature.key_id is not None else SignatureStatus.OTHER_KEY


def sign(manifest: Manifest, key: SigningKey) -> Manifest:
    """``manifest`` carrying an HMAC-SHA256 signature under ``key``."""
    return manifest.with_signature(Signature(signature_of(manifest.signed_bytes(), key), key.key_id))

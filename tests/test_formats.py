"""Format detection and the .keras archive audit, on hand-made files."""

import zipfile

import pytest

import nnsave
from nnsave import FormatError, UntrustedFileError
from nnsave.formats import handler_for_path, register_handler, registered_suffixes
from nnsave.formats.joblib_pickle import JoblibHandler


def test_registry_knows_builtin_suffixes():
    assert registered_suffixes() == [".keras", ".joblib", ".skops", ".safetensors"]
    assert handler_for_path("a/b/MODEL.KERAS").name == "keras"


def test_registering_a_taken_or_bad_suffix_fails():
    with pytest.raises(ValueError, match="already belongs to 'joblib'"):
        register_handler(JoblibHandler())

    class Odd(JoblibHandler):
        suffixes = ("pkl",)

    with pytest.raises(ValueError, match="start with '.'"):
        register_handler(Odd())


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_path_traversal_member_is_refused(tmp_path):
    path = _zip(tmp_path / "evil.keras", {"config.json": "{}", "../../outside.txt": "x"})
    with pytest.raises(UntrustedFileError, match="path traversal"):
        nnsave.inspect(path)
    with pytest.raises(UntrustedFileError, match="path traversal"):
        nnsave.load(path, verify=False)


def test_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("assets/zeros", b"\0" * (50 << 20))
    with pytest.raises(UntrustedFileError, match="zip bomb"):
        nnsave.inspect(path)


def test_zip_without_config_is_not_a_model(tmp_path):
    path = _zip(tmp_path / "other.keras", {"readme.txt": "hello"})
    with pytest.raises(FormatError, match="not a Keras model: it has no config.json"):
        nnsave.inspect(path)


def test_corrupt_zip_is_a_format_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(FormatError, match="not a valid .keras archive"):
        nnsave.inspect(path)
    with pytest.raises(FormatError, match="not a valid .keras archive"):
        nnsave.load(path, verify=False)


@pytest.mark.parametrize(
    "head, compression",
    [(b"\x80\x05", None), (b"\x78\x9c", "zlib"), (b"\x1f\x8b", "gzip"), (b"BZh9", "bz2"), (b"\xfd7zXZ\x00", "xz")],
)
def test_joblib_signatures(tmp_path, head, compression):
    path = tmp_path / "x.joblib"
    path.write_bytes(head + b"rest")
    assert JoblibHandler().describe(path) == {"compression": compression}


def test_empty_joblib_file(tmp_path):
    path = tmp_path / "empty.joblib"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="not a joblib file"):
        nnsave.inspect(path)

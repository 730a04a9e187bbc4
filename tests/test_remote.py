"""Object stores: the five-step protocol against a real S3 API (moto on 127.0.0.1) and memory://.

Every test talks to the loopback address only: the ``bucket`` fixture
(tests/conftest.py) points the standard AWS variables at moto's server.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
import uuid
import warnings

import fsspec
import numpy as np
import pytest

import nnsave
from nnsave import artifact, cli, objectstore
from nnsave.errors import (
    FileMissingError,
    IntegrityError,
    InvalidArgumentError,
    TargetExistsError,
    UntrustedFileError,
    UnverifiedFileWarning,
)
from nnsave.manifest import MANIFEST_SUFFIX, Manifest
from nnsave.objectstore import ObjectPath


def _fs():
    return fsspec.filesystem("s3")


def _keys(url: str) -> list[str]:
    fs, key = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    return sorted(name.rsplit("/", 1)[-1] for name in fs.ls(key, detail=False))


def _uploads(url: str) -> list[str]:
    bucket = url.removeprefix("s3://").split("/")[0]
    return [upload["Key"] for upload in _fs().list_multipart_uploads(bucket)]


@pytest.fixture
def memory_url():
    """A fresh folder in fsspec's in-memory store."""
    folder = f"memory://nnsave-{uuid.uuid4().hex[:8]}"
    yield folder
    fsspec.filesystem("memory").rm(folder.removeprefix("memory://"), recursive=True)


# --------------------------------------------------------------------------- round trips


def test_a_keras_model_round_trips_bitwise_through_s3_with_only_the_environment_variables(
    bucket, trained_sequential, digits, tmp_path
):
    url = f"{bucket}/run/m.keras"
    written = nnsave.save(trained_sequential, url)
    assert isinstance(written, ObjectPath) and str(written) == url
    assert _keys(f"{bucket}/run") == ["m.keras", "m.keras" + MANIFEST_SUFFIX]
    assert _uploads(bucket) == [], "the upload was committed, nothing is left pending"
    restored = nnsave.load(url)
    for before, after in zip(trained_sequential.get_weights(), restored.get_weights()):
        assert before.dtype == after.dtype and np.array_equal(before, after)
    X, _ = digits
    assert np.array_equal(trained_sequential.predict(X, verbose=0), restored.predict(X, verbose=0))
    assert nnsave.verify(url).signature is nnsave.SignatureStatus.VALID


def test_a_fresh_process_with_only_the_environment_variables_saves_and_loads(bucket, tmp_path):
    url = f"{bucket}/fresh/arrays.joblib"
    script = textwrap.dedent(f"""
        import numpy as np, nnsave
        nnsave.save({{"w": np.arange(6.0)}}, {url!r})
        print(nnsave.load({url!r})["w"].sum(), nnsave.verify({url!r}).integrity.value)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["15.0", "intact"]


def test_memory_urls_round_trip_and_leave_exactly_the_pair(memory_url):
    url = f"{memory_url}/a/arrays.joblib"
    nnsave.save({"w": np.arange(4)}, url, sha256=True)
    assert np.array_equal(nnsave.load(url)["w"], np.arange(4))
    assert _keys(f"{memory_url}/a") == ["arrays.joblib", "arrays.joblib" + MANIFEST_SUFFIX]
    info = nnsave.verify(url)
    assert info.integrity is nnsave.Integrity.INTACT and "sha256" in info.digests


def test_file_urls_take_the_local_route(tmp_path):
    target = nnsave.save([1, 2], f"file://{tmp_path}/a.joblib")
    assert target == tmp_path / "a.joblib" and (tmp_path / "a.joblib.nnsave.json").is_file()
    assert nnsave.load(f"file://{tmp_path}/a.joblib") == [1, 2]


def test_storage_options_reach_fsspec(s3_endpoint, bucket, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    options = {"endpoint_url": s3_endpoint, "key": "testing", "secret": "testing"}
    url = f"{bucket}/opts/a.joblib"
    nnsave.save([3], url, storage_options=options)
    assert nnsave.load(url, storage_options=options) == [3]


def test_urls_and_options_that_cannot_work_are_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match="not ftp://"):
        nnsave.load("ftp://host/m.keras")
    with pytest.raises(InvalidArgumentError, match="storage_options apply to URLs"):
        nnsave.save([1], tmp_path / "a.joblib", storage_options={"anon": True})
    with pytest.raises(InvalidArgumentError, match="dict of options"):
        nnsave.load("memory://x/a.joblib", storage_options=["anon"])


def test_a_missing_object_or_bucket_is_a_missing_file(bucket):
    with pytest.raises(FileMissingError, match="No such object"):
        nnsave.load(f"{bucket}/absent.joblib")
    with pytest.raises(FileMissingError):
        nnsave.save([1], f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/a.joblib")


# --------------------------------------------------------------------------- conditional create


def test_overwrite_false_is_refused_when_the_pair_exists(bucket):
    url = f"{bucket}/x/a.joblib"
    nnsave.save([1], url)
    with pytest.raises(TargetExistsError, match="overwrite=False"):
        nnsave.save([2], url, overwrite=False)
    assert nnsave.load(url) == [1]


def test_s3_commits_an_exclusive_upload_with_if_none_match_so_one_of_two_savers_wins(bucket):
    fs, key = fsspec.core.url_to_fs(f"{bucket}/race/a.bin")
    target = ObjectPath(fs, "s3", key)
    first, second = (objectstore.Upload(target, exclusive=True) for _ in range(2))
    for upload, data in ((first, b"first"), (second, b"second")):
        upload.file.write(data)
        upload.finish()
    first.commit()
    with pytest.raises(TargetExistsError):
        second.commit()
    second.discard()
    assert fs.cat_file(key) == b"first"


def test_memory_checks_overwrite_false_just_before_the_copy(memory_url):
    url = f"{memory_url}/a.joblib"
    nnsave.save([1], url)
    with pytest.raises(TargetExistsError):
        nnsave.save([2], url, overwrite=False)
    assert nnsave.load(url) == [1]


# --------------------------------------------------------------------------- damaged objects


def test_a_changed_payload_is_reported_and_never_loaded(bucket):
    url = f"{bucket}/d/a.joblib"
    nnsave.save({"w": np.arange(100)}, url)
    fs, key = fsspec.core.url_to_fs(url)
    data = bytearray(fs.cat_file(key))
    data[-5] ^= 0xFF
    fs.pipe_file(key, bytes(data))
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        nnsave.load(url)
    assert nnsave.inspect(url).integrity is nnsave.Integrity.MISMATCH
    assert cli.main(["verify", url]) == cli.EXIT_DAMAGED


def test_a_damaged_manifest_and_a_missing_one_are_handled_as_on_disk(bucket):
    url = f"{bucket}/d/b.joblib"
    nnsave.save([1], url)
    fs, key = fsspec.core.url_to_fs(url)
    fs.pipe_file(key + MANIFEST_SUFFIX, b'{"schema": [')
    with pytest.raises(IntegrityError, match="damaged"):
        nnsave.load(url)
    fs.rm_file(key + MANIFEST_SUFFIX)
    with pytest.raises(UntrustedFileError):
        nnsave.load(url)  # a pickle that nothing vouches for
    with pytest.warns(UnverifiedFileWarning):
        assert nnsave.load(url, trusted=True) == [1]


def test_a_mixed_pair_from_two_saves_is_refused_with_the_remedy(bucket):
    first, second = f"{bucket}/m/a.joblib", f"{bucket}/m/b.joblib"
    nnsave.save([1], first)
    nnsave.save([2], second)
    fs, first_key = fsspec.core.url_to_fs(first)
    _, second_key = fsspec.core.url_to_fs(second)
    fs.pipe_file(first_key + MANIFEST_SUFFIX, fs.cat_file(second_key + MANIFEST_SUFFIX))
    with pytest.raises(IntegrityError, match="save the model again"):
        nnsave.load(first)


# --------------------------------------------------------------------------- downloads


def test_a_large_download_goes_to_a_private_unlinked_file_and_is_memory_mapped(bucket, monkeypatch, tmp_path):
    monkeypatch.setattr(objectstore, "MEMORY_LIMIT", 1 << 20)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    url = f"{bucket}/big/a.joblib"
    array = np.random.default_rng(0).random(400_000)
    nnsave.save({"w": array}, url)
    fetched = objectstore.fetch(objectstore.locate(url), ["blake3"])
    try:
        assert fetched.descriptor_path() is not None, "spilled to a file"
        assert os.stat(fetched.descriptor_path()).st_mode & 0o777 == 0o600
        assert list(tmp_path.iterdir()) == [], "the file was unlinked at once"
    finally:
        fetched.close()
    assert np.array_equal(nnsave.load(url, mmap_mode="r")["w"], array)


def test_progress_is_shown_on_stderr_when_asked(bucket, monkeypatch, capsys):
    monkeypatch.setattr(nnsave.progress, "QUIET_SECONDS", 0.0)
    url = f"{bucket}/p/a.joblib"
    nnsave.save({"w": np.zeros(300_000)}, url, progress=True)
    nnsave.load(url, progress=True)
    err = capsys.readouterr().err
    assert f"nnsave: uploading {url}: 2.4 MB" in err and f"nnsave: reading {url}: 2.4 MB" in err
    nnsave.load(url)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- file objects


def test_a_file_object_gets_the_payload_and_the_manifest_is_returned(tmp_path):
    buffer = io.BytesIO()
    manifest = nnsave.save({"w": np.arange(3)}, buffer)
    assert isinstance(manifest, Manifest) and manifest.format == "joblib"
    buffer.seek(0)
    assert np.array_equal(nnsave.load(buffer, manifest=manifest)["w"], np.arange(3))


def test_a_file_object_sidecar_can_be_a_path_or_a_url(tmp_path, memory_url):
    for sidecar in (tmp_path / "w.nnsave.json", f"{memory_url}/w.nnsave.json"):
        buffer = io.BytesIO()
        nnsave.save([1, 2], buffer, manifest=sidecar)
        buffer.seek(0)
        assert nnsave.load(buffer, manifest=sidecar) == [1, 2]


def test_a_file_object_is_verified_before_anything_is_unpickled(tmp_path):
    buffer = io.BytesIO()
    manifest = nnsave.save([1, 2], buffer, sha256=True)
    tampered = bytearray(buffer.getvalue())
    tampered[-3] ^= 1
    with pytest.raises(IntegrityError):
        nnsave.load(io.BytesIO(bytes(tampered)), manifest=manifest)
    with pytest.raises(UntrustedFileError):
        nnsave.load(_named(buffer.getvalue(), "x.joblib"))  # no manifest, no pin: a pickle nobody vouches for
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matching pin checked every byte: the file loads without a warning
        assert nnsave.load(_named(buffer.getvalue(), "x.joblib"), expected_sha256=manifest.digests["sha256"]) == [1, 2]


def test_a_file_object_of_unknown_format_needs_its_manifest():
    with pytest.raises(InvalidArgumentError, match="manifest="):
        nnsave.load(io.BytesIO(b"abc"))


def test_a_real_file_opened_in_binary_mode_works_like_any_file_object(tmp_path):
    with open(tmp_path / "a.joblib", "wb") as handle:
        manifest = nnsave.save([5], handle)
    with open(tmp_path / "a.joblib", "rb") as handle:
        assert nnsave.load(handle, manifest=manifest) == [5]


def _named(data: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream


# --------------------------------------------------------------------------- the CLI


def test_the_cli_reaches_s3_with_environment_variables_or_storage_options(bucket, s3_endpoint, monkeypatch, capsys):
    url = f"{bucket}/cli/a.joblib"
    nnsave.save([1], url)
    assert cli.main(["verify", url]) == cli.EXIT_OK
    assert capsys.readouterr().out.startswith(f"OK {url}:")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    options = ["--storage-option", f"endpoint_url={s3_endpoint}"]
    assert cli.main(["inspect", "--json", *options, url]) == cli.EXIT_OK
    assert '"integrity": "intact"' in capsys.readouterr().out
    assert cli.main(["verify", *options, f"{bucket}/cli/absent.joblib"]) == cli.EXIT_USAGE
    assert cli.main(["verify", "--storage-option", "no-equals", url]) == cli.EXIT_USAGE


def test_the_cli_shows_progress_when_asked(bucket, monkeypatch, capsys):
    monkeypatch.setattr(nnsave.progress, "QUIET_SECONDS", 0.0)
    url = f"{bucket}/cli/p.joblib"
    nnsave.save({"w": np.zeros(200_000)}, url)
    assert cli.main(["verify", "--progress", url]) == cli.EXIT_OK
    assert f"nnsave: reading {url}: 1.6 MB" in capsys.readouterr().err


def test_roundtrip_can_go_through_an_object_store(bucket):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    report = nnsave.roundtrip(model, [[3.0]], path=f"{bucket}/rt/model.joblib")
    assert report.ok and report.format == "joblib" and report.size > 0
    assert _keys(f"{bucket}/rt") == ["model.joblib", "model.joblib" + MANIFEST_SUFFIX]
    with pytest.raises(InvalidArgumentError, match="not both"):
        nnsave.roundtrip(model, [[3.0]], path=f"{bucket}/rt/model.joblib", suffix=".skops")

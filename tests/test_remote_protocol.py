"""The object-store commit protocol under a killed writer and under racing writers.

A writer process (a fresh interpreter, talking to moto's server on
127.0.0.1) saves version 2 over version 1 and kills itself with SIGKILL at
one step of the protocol, through a patch of the step's function:

* ``uploading``: parts of the payload are uploaded, nothing is committed;
* ``staged``: the new manifest is staged (step 2), the payload not committed;
* ``committed``: the payload is committed (step 3), its manifest not written;
* ``published``: the manifest is written (step 4), the staged one not deleted.

Then a reader must find a whole pair (version 1 before step 3, version 2
from step 3 on), and :func:`nnsave.artifact.recover` must clean up every
leftover (uncommitted multipart uploads, staged manifests) once it counts
as stale, leaving a pair that verifies on its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import warnings

import fsspec
import numpy as np
import pytest

import nnsave
from nnsave import artifact, objectstore
from nnsave.errors import IntegrityError
from nnsave.manifest import MANIFEST_SUFFIX

#: Over one 8 MiB part, so that a part is uploaded before the writer dies.
ELEMENTS = 1_200_000

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import nnsave
    from nnsave import objectstore

    url, step = sys.argv[1], sys.argv[2]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if step == "uploading":
        objectstore.Upload.finish = die
    elif step == "staged":
        objectstore.Upload.commit = die
    elif step == "committed":
        commit = objectstore.Upload.commit
        def commit_then_die(self):
            commit(self)
            die()
        objectstore.Upload.commit = commit_then_die
    elif step == "published":
        remove = objectstore.remove
        def remove_or_die(locations):
            locations = list(locations)
            if any(objectstore.staged_at(location.name) for location in locations):
                die()
            remove(locations)
        objectstore.remove = remove_or_die
    nnsave.save({"version": 2, "w": np.full(int(sys.argv[3]), 2.0)}, url)
    print("the save finished; the kill never came")
    """
)

#: Which version a reader must find after a kill at each step, and what is left over.
STEPS = {
    "uploading": (1, {"upload"}),
    "staged": (1, {"upload", "staged manifest"}),
    "committed": (2, {"staged manifest"}),
    "published": (2, {"staged manifest"}),
}


def _leftovers(url: str) -> set[str]:
    fs, key = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    folder, name = key.rsplit("/", 1)
    found = set()
    if any(upload["Key"].endswith(name) for upload in fs.list_multipart_uploads(folder.split("/")[0])):
        found.add("upload")
    if any(objectstore.staged_at(entry.rsplit("/", 1)[1]) for entry in fs.ls(folder, detail=False)):
        found.add("staged manifest")
    return found


@pytest.mark.parametrize("step", list(STEPS))
def test_a_writer_killed_at_any_step_leaves_a_whole_pair_and_leftovers_that_recover_cleans(
    step, bucket, tmp_path, monkeypatch
):
    url = f"{bucket}/kill/{step}.joblib"
    nnsave.save({"version": 1, "w": np.full(ELEMENTS, 1.0)}, url)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    result = subprocess.run(
        [sys.executable, str(script), url, step, str(ELEMENTS)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == -9, result.stdout + result.stderr
    expected, left = STEPS[step]
    assert _leftovers(url) == left

    loaded = nnsave.load(url)
    assert loaded["version"] == expected and np.all(loaded["w"] == expected)
    assert nnsave.verify(url).integrity is nnsave.Integrity.INTACT

    # A young staged manifest may belong to a live writer: left alone. (moto
    # reports every multipart upload as initiated in 2010: always stale there.)
    directory = objectstore.locate(url).parent
    handled = artifact.recover(directory)
    assert _leftovers(url) == left - {"upload"}
    # Once stale, everything is cleaned; a staged manifest that completes the pair is published.
    handled += artifact.recover(directory, older_than=0)
    assert len(handled) == len(left) and _leftovers(url) == set()
    with artifact.checked_pair(objectstore.locate(url), format_name="joblib") as check:
        assert check.integrity is nnsave.Integrity.INTACT and not check.rolled_forward
    assert nnsave.load(url)["version"] == expected


def test_a_reader_rolls_forward_in_memory_and_publishes_only_a_stale_staged_manifest(bucket, tmp_path, monkeypatch):
    url = f"{bucket}/kill/reader.joblib"
    nnsave.save({"version": 1, "w": np.full(ELEMENTS, 1.0)}, url)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    subprocess.run([sys.executable, str(script), url, "committed", str(ELEMENTS)], capture_output=True, timeout=300)
    assert nnsave.load(url)["version"] == 2
    assert _leftovers(url) == {"staged manifest"}, "a young staged manifest may be a live writer's"
    monkeypatch.setattr(objectstore, "STALE_SECONDS", 0.0)
    assert nnsave.load(url)["version"] == 2
    assert _leftovers(url) == set(), "the reader published the stale one"


# --------------------------------------------------------------------------- racing writers

RACER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import nnsave

    url, writer, saves = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    for n in range(saves):
        nnsave.save({"writer": writer, "n": n, "w": np.full(20_000, writer * 1000 + n)}, url)
    print("done")
    """
)


def test_racing_writers_never_let_a_reader_load_a_mixed_pair(bucket, tmp_path):
    url = f"{bucket}/race/model.joblib"
    nnsave.save({"writer": 0, "n": 0, "w": np.full(20_000, 0)}, url)
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    writers = [
        subprocess.Popen([sys.executable, str(script), url, str(writer), "12"], stdout=subprocess.PIPE, text=True)
        for writer in (1, 2)
    ]
    loaded, refused = 0, 0
    deadline = time.monotonic() + 240
    while any(writer.poll() is None for writer in writers) and time.monotonic() < deadline:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                obj = nnsave.load(url)
        except IntegrityError:
            refused += 1  # a pair mixed by the race, or a writer between its steps: never loaded
            continue
        finally:
            time.sleep(0.01)
        loaded += 1
        assert np.all(obj["w"] == obj["writer"] * 1000 + obj["n"]), "a payload whose parts disagree"
    for writer in writers:
        with writer:  # closes its pipe
            assert writer.wait(timeout=60) == 0 and writer.stdout.read().strip() == "done"
    assert loaded > 0
    # Whatever the race left, the last complete save can be repeated and then verifies.
    nnsave.save({"writer": 3, "n": 0, "w": np.full(20_000, 3000)}, url)
    assert nnsave.verify(url).integrity is nnsave.Integrity.INTACT
    assert nnsave.load(url)["writer"] == 3
    print(f"racing writers: {loaded} loads, {refused} refusals of a mixed or half-written pair")

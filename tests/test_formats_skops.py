"""The .skops format: refusals at save time, its arguments, hostile archives, and no extras."""

from __future__ import annotations

import collections
import enum
import functools
import io
import json
import re
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import skops.io
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import Birch
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

import nnsave
from nnsave import (
    FormatError,
    IntegrityError,
    InvalidArgumentError,
    UnsupportedObjectError,
    UntrustedFileError,
    UnverifiedFileWarning,
)
from nnsave.formats._python import first_difference
from test_formats_joblib import damage, damaged, only_nnsave_errors, saved_files

X = np.random.default_rng(0).random((40, 4))
y = np.arange(40) % 3
TREE = "sklearn.tree._tree.Tree"


@functools.cache
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)


def _unsigned_copy(path: Path, folder: Path) -> Path:
    """The payload alone, as someone else would share it: no manifest, no signature."""
    copy = folder / f"shared-{path.name}"
    copy.write_bytes(path.read_bytes())
    return copy


# ------------------------------------------------------------------ refused at save time


def _top_level_function(x):
    return x


class Shade(enum.Enum):
    LIGHT = 1


def _local_function():
    def inner(x):
        return x

    return inner


@pytest.mark.parametrize(
    "obj, reason",
    [
        (FunctionTransformer(lambda x: x), r"<lambda>, a lambda or a function defined inside"),
        (FunctionTransformer(_local_function()), r"_local_function\.<locals>\.inner"),
        (Birch().fit(X), r"skops cannot store it \(UnsupportedTypeException: Objects of type Birch"),
        (FunctionTransformer(_top_level_function, kw_args={"pattern": re.compile("a+")}), r"not load it back"),
        (FunctionTransformer(_top_level_function, kw_args={"shade": Shade.LIGHT}), r"not load it back"),
        (
            FunctionTransformer(_top_level_function, kw_args={"recent": collections.deque([1, 2])}),
            r"loads it back changed \(the object\.kw_args\['recent'\] \(items\): 2 items became 0\)",
        ),
    ],
    ids=["lambda", "local-function", "Birch", "re.Pattern", "enum", "deque"],
)
def test_what_skops_could_not_give_back_is_refused_before_writing(tmp_path, obj, reason):
    target = tmp_path / "model.skops"
    with pytest.raises(UnsupportedObjectError, match=reason) as refused:
        nnsave.save(obj, target)
    message = str(refused.value)
    assert str(target) in message and ".joblib" in message and "Nothing was written" in message
    assert saved_files(tmp_path) == []


def test_the_deque_refusal_is_real():
    """skops itself empties a deque: the refusal above guards against a real loss."""
    data = skops.io.dumps({"recent": collections.deque([1, 2])})
    assert skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))["recent"] == collections.deque()


def test_a_refusal_keeps_the_previous_file(tmp_path):
    path = nnsave.save(LogisticRegression().fit(X, y), tmp_path / "model.skops")
    before = path.read_bytes()
    with pytest.raises(UnsupportedObjectError):
        nnsave.save(FunctionTransformer(lambda x: x), path)
    assert path.read_bytes() == before
    nnsave.verify(path)


def test_a_function_from_a_module_is_kept(tmp_path):
    transformer = FunctionTransformer(np.log1p).fit(X)
    loaded = nnsave.load(nnsave.save(transformer, tmp_path / "log.skops"), trusted_types=["numpy.log1p"])
    assert loaded.func is np.log1p
    assert np.array_equal(loaded.transform(X), transformer.transform(X))


# ------------------------------------------------------------------ first_difference


def test_first_difference_finds_equal_objects_equal():
    shared = [1.0]
    obj = {
        "nan": float("nan"),
        "array": np.array([np.nan, -0.0, 1.5]),
        "records": np.zeros(3, dtype=[("a", "i1"), ("b", "f8")]),  # padding between fields
        "sparse": scipy.sparse.random(5, 5, density=0.3, random_state=0, format="csr"),
        "rng": np.random.RandomState(3),
        "generator": np.random.default_rng(3),
        "objects": np.array([None, "x", 3], dtype=object),
        "aliases": [shared, shared],
        "model": LogisticRegression().fit(X, y),
    }
    cycle: list = []
    cycle.append(cycle)
    obj["cycle"] = cycle
    data = skops.io.dumps({key: value for key, value in obj.items() if key != "cycle"})
    rebuilt = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    rebuilt["cycle"] = obj["cycle"]
    assert first_difference(obj, rebuilt) is None


@pytest.mark.parametrize(
    "expected, actual, where",
    [
        ({"a": 1}, {"a": 2}, r"the object\['a'\]: 1 became 2"),
        ({"a": 1}, {"b": 1}, r"the keys"),
        ([1.0], [np.float64(1.0)], r"a float became a float64"),
        (np.array([0.0]), np.array([-0.0]), r"values differ"),
        (np.zeros(2), np.zeros(3), r"float64 \(2,\) became float64 \(3,\)"),
        (np.random.RandomState(0), np.random.RandomState(1), r"random state"),
        (LogisticRegression(C=1.0), LogisticRegression(C=2.0), r"the object\.C: 1\.0 became 2\.0"),
        (functools.partial(int, base=2), functools.partial(int, base=8), r"arguments|state"),
        (scipy.sparse.eye(3, format="csr"), scipy.sparse.eye(3, format="csr") * 2, r"sparse data"),
    ],
)
def test_first_difference_says_where_objects_differ(expected, actual, where):
    assert re.search(where, first_difference(expected, actual))


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize("level", range(10))
def test_every_zip_level_applies(tmp_path, level):
    path = nnsave.save({"w": np.zeros(20_000)}, tmp_path / "w.skops", compress=level)
    with zipfile.ZipFile(path) as archive:
        methods = {member.compress_type for member in archive.infolist()}
    assert methods == ({zipfile.ZIP_STORED} if level == 0 else {zipfile.ZIP_DEFLATED})
    assert first_difference({"w": np.zeros(20_000)}, nnsave.load(path)) is None


@pytest.mark.parametrize("compress", [10, -1, True, 3.0, "zlib", ("zlib", 3), "3"])
def test_a_compression_skops_does_not_take_is_refused(tmp_path, compress):
    target = tmp_path / "w.skops"
    with pytest.raises(InvalidArgumentError) as refused:
        nnsave.save([1], target, compress=compress)
    message = str(refused.value)
    assert str(target) in message and f"compress={compress!r}" in message and "0-9" in message
    assert saved_files(tmp_path) == []


def test_mmap_mode_does_not_apply(tmp_path):
    path = nnsave.save([1], tmp_path / "w.skops")
    with pytest.raises(InvalidArgumentError, match=r"w\.skops: mmap_mode='r' applies to \.joblib files only"):
        nnsave.load(path, mmap_mode="r")


def test_trusted_types_approve_the_types_of_a_file_nobody_vouched_for(tmp_path):
    shared = _unsigned_copy(nnsave.save(forest(), tmp_path / "forest.skops"), tmp_path)
    assert nnsave.inspect(shared).details["untrusted_types"] == [TREE]
    with pytest.raises(UntrustedFileError, match=rf"types outside skops's safe set.*{re.escape(TREE)}"):
        nnsave.load(shared)
    with pytest.warns(UnverifiedFileWarning):
        loaded = nnsave.load(shared, trusted_types=[TREE])
    assert np.array_equal(loaded.predict_proba(X), forest().predict_proba(X))


def test_trusted_types_must_be_a_list_of_names(tmp_path):
    path = nnsave.save([1], tmp_path / "w.skops")
    for wrong in (TREE, [3], b"x"):
        with pytest.raises(InvalidArgumentError, match=r"w\.skops: trusted_types must be a list"):
            nnsave.load(path, trusted_types=wrong)


# ------------------------------------------------------------------ hostile and damaged archives


def _archive(members: dict[str, bytes | str], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _plain_schema() -> str:
    genuine = skops.io.dumps({"a": 1})
    with zipfile.ZipFile(io.BytesIO(genuine)) as archive:
        return archive.read("schema.json").decode()


@pytest.mark.parametrize("name", ["../x", "../../etc/cron.d/job", "/abs/path", "a\\..\\b", "C:evil"])
def test_members_named_outside_the_archive_are_refused(tmp_path, name):
    path = tmp_path / "evil.skops"
    path.write_bytes(_archive({"schema.json": _plain_schema(), name: b"x"}))
    assert nnsave.inspect(path).details == {"hostile_members": [name]}
    with pytest.raises(UntrustedFileError, match=r"evil\.skops.*path traversal"):
        nnsave.load(path, trusted=True)


def test_a_zip_bomb_is_refused_without_unpacking_it(tmp_path):
    genuine = skops.io.dumps({"w": np.zeros(4)})
    with zipfile.ZipFile(io.BytesIO(genuine)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    array_member = next(name for name in members if name != "schema.json")
    members[array_member] = members[array_member][:128] + bytes(200 << 20)  # 200 MiB of zeros
    path = tmp_path / "bomb.skops"
    path.write_bytes(_archive(members, compression=zipfile.ZIP_DEFLATED))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(UntrustedFileError, match=r"bomb\.skops.*zip bomb"):
            nnsave.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20


@pytest.mark.parametrize(
    "schema, problem",
    [
        ("[" * 300 + "]" * 300, "nested more than 200 levels"),
        ("[" * 50_000 + "]" * 50_000, "not valid JSON"),
        ('{"__class__": "dict", "x": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"__class__": NaN}', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ("not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ('{"__class__": 5, "__module__": [], "__loader__": {}}', "does not describe objects"),
        ('{"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": 7}', ""),
        ('{"protocol": "two"}', "does not describe objects"),
    ],
)
def test_a_hostile_schema_gives_a_format_error(tmp_path, schema, problem):
    path = tmp_path / "odd.skops"
    path.write_bytes(_archive({"schema.json": schema}))
    with pytest.raises(FormatError, match=rf"odd\.skops.*{problem}"):
        nnsave.inspect(path)
    with pytest.raises(FormatError, match=r"odd\.skops"):
        nnsave.load(path, trusted=True)


def test_a_schema_too_large_to_be_genuine_is_not_unpacked(tmp_path):
    path = tmp_path / "huge.skops"
    path.write_bytes(_archive({"schema.json": " " * (65 << 20) + "{}"}, compression=zipfile.ZIP_DEFLATED))
    with pytest.raises(FormatError, match=r"huge\.skops: its schema\.json is damaged \(it would unpack to 68,157,442"):
        nnsave.inspect(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
node_keys = st.sampled_from(["__class__", "__module__", "__loader__", "__id__", "content", "protocol", "file", "type"])
schemas = st.dictionaries(node_keys, json_values | st.sampled_from(["dict", "builtins", "DictNode", "numpy", "ndarray"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=schemas)
def test_made_up_schemas_giveonly_nnsave_errors(tmp_path_factory, schema):
    path = tmp_path_factory.mktemp("made-up") / "model.skops"
    path.write_bytes(_archive({"schema.json": json.dumps(schema), "data.npy": b"\x93NUMPY"}))
    only_nnsave_errors(path, trusted=True)
    only_nnsave_errors(path)


_GENUINE: dict[str, bytes] = {}


def _genuine(tmp_path_factory, which: str) -> bytes:
    if not _GENUINE:
        folder = tmp_path_factory.mktemp("genuine")
        model = {"forest": forest(), "w": np.arange(50.0)}
        for level in (None, 6):
            _GENUINE[str(level)] = nnsave.save(model, folder / f"{level}.skops", compress=level).read_bytes()
    return _GENUINE[which]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["None", "6"]), how=damage)
def test_damaged_archives_give_only_nnsave_errors(tmp_path_factory, which, how):
    folder = tmp_path_factory.mktemp("damaged")
    data = damaged(_genuine(tmp_path_factory, which), how)
    bare = folder / "bare.skops"
    bare.write_bytes(data)
    only_nnsave_errors(bare, trusted_types=[TREE])
    signed = nnsave.save([0], folder / "signed.skops")
    signed.write_bytes(data)  # the manifest describes other bytes
    with pytest.raises(IntegrityError):
        nnsave.load(signed)


# ------------------------------------------------------------------ without the extras


_WITHOUT_EXTRAS = """
import importlib.abc, sys

BLOCKED = {"skops", "sklearn", "scipy", "keras", "tensorflow", "h5py", "pandas", "jax", "torch", "safetensors"}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NotInstalled())
"""


def _run_without_extras(script: str, folder: Path) -> subprocess.CompletedProcess:
    none_imported = "\nassert not BLOCKED & {name.split('.')[0] for name in sys.modules}\n"
    program = _WITHOUT_EXTRAS + textwrap.dedent(script) + none_imported
    return subprocess.run(
        [sys.executable, "-c", program], cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def estimator_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-extras")
    model = LogisticRegression().fit(X, y)
    nnsave.save(model, folder / "model.skops")
    nnsave.save(forest(), folder / "forest.skops")
    nnsave.save(model, folder / "model.joblib", compress=3)
    nnsave.save({"w": np.arange(5)}, folder / "arrays.joblib")
    return folder


def test_inspect_and_verify_need_no_extras(estimator_files):
    result = _run_without_extras(
        """
        import nnsave
        from nnsave import cli
        for name in ["model.skops", "forest.skops", "model.joblib", "arrays.joblib"]:
            info = nnsave.verify(name)
            assert info.integrity.value == "intact", info
            print(info)
            assert cli.main(["inspect", name]) == 0 and cli.main(["verify", name]) == 0
        print(nnsave.load("arrays.joblib"))
        """,
        estimator_files,
    )
    assert result.returncode == 0, result.stderr
    assert 'untrusted types: unknown: pip install "nnsave[sklearn]" to list them' in result.stdout
    assert "class        : sklearn.ensemble._forest.RandomForestClassifier" in result.stdout
    assert "compression  : zlib" in result.stdout and "{'w': array([0, 1, 2, 3, 4])}" in result.stdout


def test_skops_without_skops_names_the_extra(estimator_files):
    result = _run_without_extras(
        """
        import nnsave
        for call in (lambda: nnsave.save([1], "new.skops"), lambda: nnsave.load("model.skops")):
            try:
                call()
            except nnsave.MissingDependencyError as error:
                assert isinstance(error, ModuleNotFoundError)
                print(error)
        """,
        estimator_files,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('pip install "nnsave[sklearn]"') == 2
    assert "Saving new.skops needs" in result.stdout and "Loading model.skops needs" in result.stdout
    assert not (estimator_files / "new.skops").exists()


def test_a_pickled_estimator_without_scikit_learn_names_the_module(estimator_files):
    result = _run_without_extras(
        """
        import nnsave
        try:
            nnsave.load("model.joblib")
        except nnsave.UnknownClassError as error:
            print(error)
        """,
        estimator_files,
    )
    assert result.returncode == 0, result.stderr
    assert "model.joblib needs the module 'sklearn" in result.stdout

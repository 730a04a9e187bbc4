"""The package as users get it: a wheel and an sdist that install and work, with and without extras.

The fresh environments are built offline: the wheel is installed into a new
virtual environment without its dependencies, and a ``.pth`` file lends that
environment the dependencies already installed here (all of them, or only
the core ones). Lending packages this way does not activate this checkout's
own editable install, so ``import nnsave`` there imports the wheel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import nnsave

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(sysconfig.get_paths()["purelib"])
#: The distributions `pip install nnsave` brings, with what they need in turn.
CORE = ("numpy", "numpy.libs", "joblib", "blake3", "filelock", "platformdirs")


@pytest.fixture(scope="session")
def dists(tmp_path_factory):
    """The sdist and the wheel, built from a copy of the tracked files (the build leaves debris)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.check_output(["git", "ls-files"], cwd=ROOT, text=True).splitlines()
    for name in tracked:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(out), str(source)],
        check=True, capture_output=True,
    )
    return out


def _wheel(dists: Path) -> Path:
    (wheel,) = dists.glob("nnsave-*.whl")
    return wheel


def test_sdist_and_wheel_pass_twine_check(dists):
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dists.iterdir())],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_holds_every_subpackage_and_py_typed(dists):
    names = zipfile.ZipFile(_wheel(dists)).namelist()
    assert "nnsave/py.typed" in names
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "nnsave").rglob("__init__.py")}
    in_wheel = {str(Path(name).parent) for name in names if name.endswith("__init__.py")}
    assert packages <= in_wheel, f"left out of the wheel: {packages - in_wheel}"


def test_the_metadata_states_platforms_extras_and_urls(dists):
    with zipfile.ZipFile(_wheel(dists)) as wheel:
        metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith("METADATA"))).decode()
    for platform in ("POSIX :: Linux", "MacOS", "Microsoft :: Windows"):
        assert f"Operating System :: {platform}" in metadata
    for extra in ("keras", "sklearn", "book"):
        assert f"Provides-Extra: {extra}" in metadata
    assert re.search(r"^Project-URL: Source, https://", metadata, re.M)
    assert metadata.count("Project-URL:") >= 3
    assert "pip install" in metadata.split("\n\n", 1)[1][:2000], "the description opens with how to install"


def test_the_books_repository_is_the_packages_source():
    """One place for the URL: the book's _config.yml and the package metadata agree."""
    import yaml

    source = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Source"]
    repository = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {}).get("url") or ""
    assert repository in ("", source)


def _environment(tmp_path: Path, dists: Path, lend: list[Path]) -> Path:
    """A new virtual environment with the wheel installed and ``lend`` on its path."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, capture_output=True)
    python = env / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(_wheel(dists))],
                   check=True, capture_output=True)
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "lent.pth").write_text("".join(f"{path}\n" for path in lend))
    return env


def _core_only(tmp_path: Path) -> Path:
    """A directory holding only the core distributions, linked from this environment."""
    folder = tmp_path / "core"
    folder.mkdir()
    for entry in SITE.iterdir():
        base = re.split(r"-\d", entry.name)[0].lower().replace("_", "-")
        if entry.name.lower() in CORE or base in CORE:
            (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture
def saved_files(tmp_path, trained_sequential):
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / "files"
    folder.mkdir()
    estimator = LogisticRegression(max_iter=200).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    return [
        nnsave.save(trained_sequential, folder / "m.keras"),
        nnsave.save(trained_sequential, folder / "m.safetensors"),
        nnsave.save(estimator, folder / "e.skops"),
        nnsave.save(estimator, folder / "e.joblib"),
    ]


def test_without_extras_every_format_can_be_inspected_and_verified(tmp_path, dists, saved_files):
    env = _environment(tmp_path, dists, [_core_only(tmp_path)])
    python, cli = env / "bin" / "python", env / "bin" / "nnsave"
    probe = "import nnsave, sys; print(nnsave.__file__); import importlib.util as u; print(u.find_spec('keras'), u.find_spec('sklearn'))"
    where, missing = _run([python, "-c", probe], tmp_path).stdout.splitlines()
    assert str(env) in where and missing == "None None", "the environment has the wheel and no extras"
    for path in saved_files:
        for command in ("inspect", "verify"):
            result = _run([cli, command, path], tmp_path)
            assert result.returncode == 0, f"{command} {path.name}: {result.stderr}"
            assert "Traceback" not in result.stderr
    loading = _run([python, "-c", f"import nnsave; nnsave.load({str(saved_files[0])!r})"], tmp_path)
    assert "nnsave[keras]" in loading.stderr and "MissingDependencyError" in loading.stderr


def test_with_extras_the_wheel_saves_loads_and_runs_the_cli(tmp_path, dists, saved_files):
    env = _environment(tmp_path, dists, [SITE])
    python = env / "bin" / "python"
    script = (
        "import nnsave, numpy as np, sys\n"
        "assert sys.prefix in nnsave.__file__, nnsave.__file__\n"
        f"m = nnsave.load({str(saved_files[0])!r})\n"
        f"e = nnsave.load({str(saved_files[3])!r})\n"
        "print(type(m).__name__, type(e).__name__)\n"
    )
    result = _run([python, "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Sequential", "LogisticRegression"]


def test_a_notebook_copied_out_of_the_repository_runs_where_the_wheel_is_installed(tmp_path, dists):
    env = _environment(tmp_path, dists, [SITE])
    folder = tmp_path / "empty"
    folder.mkdir()
    shutil.copy(ROOT / "book" / "quickstart.ipynb", folder)
    kernel = tmp_path / "kernel"
    subprocess.run([str(env / "bin" / "python"), "-m", "ipykernel", "install", "--prefix", str(kernel),
                    "--name", "wheel"], check=True, capture_output=True, env=_env())
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", "ran.ipynb",
         "--ExecutePreprocessor.kernel_name=wheel", "--ExecutePreprocessor.timeout=600",
         "--NotebookClient.extra_arguments=['--IPKernelApp.capture_fd_output=False']", "quickstart.ipynb"],
        cwd=folder, capture_output=True, text=True, env={**_env(), "JUPYTER_PATH": str(kernel / "share" / "jupyter")},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ran = json.loads((folder / "ran.ipynb").read_text())
    errors = [o for c in ran["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert sorted(p.name for p in folder.iterdir()) == ["quickstart.ipynb", "ran.ipynb"], "the notebook cleaned up"


def _env() -> dict[str, str]:
    """This process's environment, without what points Python at this checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(arguments: list, tmp_path: Path, **options) -> subprocess.CompletedProcess:
    """Run outside the checkout: ``python -c`` puts the working directory first on the path."""
    return subprocess.run([str(a) for a in arguments], capture_output=True, text=True, cwd=tmp_path, env=_env(), **options)


def test_import_works_without_fcntl_as_on_windows(tmp_path):
    target = nnsave.save([1, 2], tmp_path / "a.joblib")
    script = (
        "import sys\n"
        "sys.modules['fcntl'] = None  # Windows has no fcntl\n"
        "import nnsave\n"
        f"print(nnsave.inspect({str(target)!r}).integrity.value)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "intact"

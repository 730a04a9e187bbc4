"""The command line, run as a subprocess the way a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnsave


def run(*arguments, module=True):
    command = [sys.executable, "-m", "nnsave", *arguments] if module else [str(Path(sys.executable).parent / "nnsave"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture
def saved(tmp_path):
    return nnsave.save({"w": np.arange(3)}, tmp_path / "arrays.joblib", metadata={"run": 7})


def test_inspect_text_fits_one_screen(saved):
    result = run("inspect", str(saved))
    assert result.returncode == 0, result.stderr
    assert "integrity    : verified" in result.stdout and "builtins.dict" in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 120


def test_inspect_json(saved):
    result = run("inspect", "--json", str(saved))
    document = json.loads(result.stdout)
    assert document["hash_status"] == "verified" and document["metadata"] == {"run": 7}


def test_console_script_is_installed(saved):
    result = run("verify", str(saved), module=False)
    assert result.returncode == 0 and result.stdout.startswith("OK ")


def test_verify_exit_codes(saved, tmp_path):
    assert run("verify", str(saved)).returncode == 0
    saved.write_bytes(saved.read_bytes() + b"tail")
    damaged = run("verify", str(saved))
    assert damaged.returncode == 1 and "extended" in damaged.stderr and "FAILED" in damaged.stderr
    missing = run("verify", str(tmp_path / "missing.joblib"))
    assert missing.returncode == 2 and "No such file" in missing.stderr
    assert run("verify").returncode == 2
    assert run("frobnicate", "x").returncode == 2
    unknown = run("inspect", str(tmp_path))
    assert unknown.returncode == 2 and "is a directory" in unknown.stderr


def test_help_and_version():
    assert "inspect" in run("--help").stdout
    assert run("--version").stdout.strip() == f"nnsave {nnsave.__version__}"

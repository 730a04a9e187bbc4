"""The command line: exit statuses, one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import nnsave
from nnsave import cli


def _run(*arguments, **options):
    return subprocess.run([sys.executable, "-m", "nnsave", *map(str, arguments)], capture_output=True, text=True, **options)


@pytest.fixture
def saved(tmp_path):
    return nnsave.save({"w": np.arange(3)}, tmp_path / "a.joblib", metadata={"run": 1})


def test_verify_exit_statuses(saved, tmp_path):
    assert _run("verify", saved).returncode == cli.EXIT_OK
    damaged = saved.read_bytes()
    saved.write_bytes(damaged[:-1] + bytes([damaged[-1] ^ 1]))
    failed = _run("verify", saved)
    assert failed.returncode == cli.EXIT_DAMAGED and "FAILED" in failed.stderr
    assert _run("verify", tmp_path / "absent.joblib").returncode == cli.EXIT_USAGE
    assert _run("verify", tmp_path).returncode == cli.EXIT_USAGE
    assert _run("frobnicate").returncode == cli.EXIT_USAGE


@pytest.mark.parametrize("case", ["fifo", "dot", "unknown-suffix", "garbage-manifest"])
def test_bad_input_never_prints_a_traceback(saved, tmp_path, case):
    if case == "fifo":
        target = tmp_path / "pipe.joblib"
        os.mkfifo(target)
    elif case == "dot":
        target = "."
    elif case == "unknown-suffix":
        target = tmp_path / "a.txt"
        target.write_text("hi")
    else:
        target = saved
        (tmp_path / "a.joblib.nnsave.json").write_text('{"schema_version": [' * 50)
    for command in ("inspect", "verify"):
        result = _run(command, target, cwd=tmp_path, timeout=60)
        assert "Traceback" not in result.stderr
        if command == "inspect" and case == "garbage-manifest":
            # inspect describes what it found; verify is the check that fails.
            assert result.returncode == cli.EXIT_OK and "damaged" in result.stdout
            continue
        assert result.returncode in (cli.EXIT_DAMAGED, cli.EXIT_USAGE)
        assert len(result.stderr.strip().splitlines()) == 1


def test_inspect_text_and_json(saved):
    text = _run("inspect", saved)
    assert text.returncode == 0 and "signed with your key" in text.stdout
    assert all(len(line) <= 88 for line in text.stdout.splitlines())
    document = json.loads(_run("inspect", "--json", saved).stdout)
    assert document["integrity"] == "intact" and document["metadata"] == {"run": 1}


def test_a_closed_pipe_is_not_an_error(saved):
    shell = f"{sys.executable} -m nnsave inspect --json {saved} | head -c 10"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True)
    assert result.returncode == 0 and "Broken pipe" not in result.stderr


def test_an_internal_error_is_one_line_with_its_own_status(monkeypatch, capsys, saved):
    def broken(path, **options):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli.api, "inspect", broken)
    assert cli.main(["inspect", str(saved)]) == cli.EXIT_INTERNAL
    error = capsys.readouterr().err
    assert error.startswith("nnsave: internal error: RuntimeError: a bug") and error.count("\n") == 1


def test_unsigned_pickles_are_reported_as_such(tmp_path):
    payload = tmp_path / "p.joblib"
    payload.write_bytes(pickle.dumps([1]))
    assert "no manifest" in _run("inspect", payload).stdout


def test_key_shows_where_the_key_lives(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSAVE_KEY_FILE", str(tmp_path / "k" / "signing.key"))
    assert "No signing key yet" in _run("key", env=os.environ).stdout
    nnsave.save([1], tmp_path / "a.joblib")
    shown = _run("key", env=os.environ).stdout
    assert str(tmp_path / "k" / "signing.key") in shown and "id " in shown


def test_help_and_version():
    assert _run("--help").returncode == 0
    assert nnsave.__version__ in _run("--version").stdout


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "nnsave")
    assert subprocess.run([script, "--version"], capture_output=True).returncode == 0

"""`make lab` starts JupyterLab on the book's chapters.

The test starts it on 127.0.0.1 with a free port and no browser, waits until it
answers, asks it for the chapters, and stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _book import ROOT

STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read().decode()


def _wait_until_answering(server: subprocess.Popen, url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`make lab` exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if _get(url, token)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(server: subprocess.Popen) -> bool:
    """Stop make and the JupyterLab it started (the process group this test created).

    Returns whether they stopped on SIGTERM, as JupyterLab should.
    """
    if server.poll() is not None:
        return True
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        return False


@pytest.mark.skipif(shutil.which("make") is None, reason="`make` is not installed")
def test_make_lab_serves_the_chapters(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    options = f"--no-browser --ip=127.0.0.1 --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    if os.geteuid() == 0:  # CI runs as root, which JupyterLab refuses unless told
        options += " --allow-root"
    command = [
        "make", "--no-print-directory", "lab",
        # The environment under test is this interpreter's; -o keeps make from
        # reinstalling it from inside a test.
        f"BIN={Path(sys.executable).parent}", "-o", ".venv/.nnsave-installed",
        f"LAB_OPTIONS={options}",
    ]
    # Jupyter's per-user files (runtime, settings, workspaces) go to a scratch folder.
    scratch = {name: str(tmp_path / name.lower()) for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR")}
    log = tmp_path / "lab.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=ROOT, env=os.environ | scratch, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(server, f"{base}/api/status", token, log)
        status, page = _get(f"{base}/lab", token)
        assert status == 200 and "JupyterLab" in page
        status, listing = _get(f"{base}/api/contents/", token)
        names = {item["name"] for item in json.loads(listing)["content"]}
        assert {"intro.md", "quickstart.ipynb", "checkpoints.ipynb"} <= names, sorted(names)
    finally:
        stopped = _stop(server)
    assert stopped, f"JupyterLab ignored SIGTERM:\n{log.read_text()[-3000:]}"

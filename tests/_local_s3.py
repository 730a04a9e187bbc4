"""moto's S3 server on 127.0.0.1, in a process of its own: the object store that the
tests and the cloud benchmark talk to. Nothing reaches beyond the loopback address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

#: How long the server may take to accept connections on a busy machine.
START_SECONDS = 60


def start_moto_server(log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server on a free port; return the process and its endpoint URL.

    ``log`` receives the server's output (discarded when None); its end is
    quoted if the server stops or never answers.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(log if log else os.devnull, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                said = log.read_text()[-2000:] if log else "(output discarded)"
                raise RuntimeError(f"moto's server did not start: {said}") from None
            time.sleep(0.1)

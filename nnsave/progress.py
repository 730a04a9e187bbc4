"""Progress of long transfers and hashes, on standard error.

A :class:`Progress` is called with the size of each chunk that passes. It
stays silent for the first :data:`QUIET_SECONDS`, so quick operations print
nothing, then rewrites one line at most a few times a second::

    nnsave: uploading s3://bucket/run/m.keras: 412.0 MB (96.3 MB/s)

and ends that line when the operation closes it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "QUIET_SECONDS"]

#: Operations shorter than this print nothing.
QUIET_SECONDS = 0.5
_REFRESH_SECONDS = 0.25
_MB = 1e6


class Progress:
    """Report bytes moved for one operation; call it with each chunk's size, then :meth:`close`.

    >>> import io
    >>> out = io.StringIO()
    >>> report = Progress("hashing m.keras", stream=out, quiet_seconds=0.0)
    >>> report(3_000_000); report.close()
    >>> out.getvalue().split("\\r")[-1].startswith("nnsave: hashing m.keras: 3.0 MB")
    True
    """

    def __init__(self, label: str, *, stream: TextIO | None = None, quiet_seconds: float | None = None) -> None:
        self.label = label
        self.done = 0
        self._stream = stream
        self._started = time.monotonic()
        self._quiet_until = self._started + (QUIET_SECONDS if quiet_seconds is None else quiet_seconds)
        self._shown_at: float | None = None

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now >= self._quiet_until and (self._shown_at is None or now - self._shown_at >= _REFRESH_SECONDS):
            self._show(now)

    def _show(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        line = f"nnsave: {self.label}: {self.done / _MB:.1f} MB ({self.done / _MB / elapsed:.1f} MB/s)"
        stream = self._stream or sys.stderr
        stream.write(f"\r{line}")
        stream.flush()
        self._shown_at = now

    def close(self) -> None:
        """Print the final figures and end the line, if anything was shown."""
        if self._shown_at is not None:
            self._show(time.monotonic())
            (self._stream or sys.stderr).write("\n")

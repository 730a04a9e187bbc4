"""The ``nnsave`` command line: a thin front end over the public API."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

from . import api
from ._version import __version__
from .errors import IntegrityError, NNSaveError

__all__ = ["main"]

EXIT_OK, EXIT_INTEGRITY, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnsave",
        description="Inspect and verify model files saved with nnsave.",
    )
    parser.add_argument("--version", action="version", version=f"nnsave {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = commands.add_parser(
        "inspect", help="describe a saved file or a TensorFlow checkpoint prefix without loading it"
    )
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify = commands.add_parser(
        "verify", help="check a file against its manifest (exit 0 ok, 1 damaged, 2 usage)"
    )
    verify.add_argument("path", metavar="PATH")
    listing = commands.add_parser(
        "ls", help="list the checkpoints in a directory (exit 0 all intact, 1 one is damaged, 2 usage)"
    )
    listing.add_argument("directory", metavar="DIR")
    listing.add_argument("--all", action="store_true", help=f"show every checkpoint, not only the newest {_LS_ROWS}")
    return parser


_LS_ROWS = 15


def _list_checkpoints(directory: str, show_all: bool) -> int:
    from .checkpoint import list_checkpoints

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = list_checkpoints(directory)
    for warning in caught:
        print(f"nnsave: warning: {warning.message}", file=sys.stderr)
    if not rows:
        print(f"{directory}: no checkpoints")
        return EXIT_OK
    shown = rows if show_all else rows[-_LS_ROWS:]
    metric = next((row.metric for row in rows if row.metric), "metric")
    width = max(len("file"), *(len(row.path.name) for row in shown))
    print(f"{'file':<{width}}  {'epoch':>5}  {metric[:12]:>12}  {'size':>9}  verifies")
    if len(shown) < len(rows):
        print(f"... {len(rows) - len(shown)} older not shown (--all shows them)")
    for row in shown:
        epoch = "" if row.epoch is None else str(row.epoch)
        value = "" if row.value is None else f"{row.value:.6g}"
        ok = ("yes" if row.kind == "keras" else "files ok") if row.verified else f"NO: {row.problem}"
        tags = " ".join(tag for tag, on in (("latest", row.latest), ("best", row.best)) if on)
        line = f"{row.path.name:<{width}}  {epoch:>5}  {value:>12}  {row.size / 1024:>6.1f} KB  {ok}"
        print(_shorten(f"{line}  {tags}".rstrip(), 118))
    return EXIT_OK if all(row.verified for row in rows) else EXIT_INTEGRITY


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        arguments = _parser().parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    try:
        if arguments.command == "ls":
            return _list_checkpoints(arguments.directory, arguments.all)
        if arguments.command == "inspect":
            info = api.inspect(arguments.path)
            print(json.dumps(info.to_dict(), indent=2) if arguments.json else info)
        else:
            info = api.verify(arguments.path)
            print(f"OK {info.path}: {info.size} bytes, sha256 {info.sha256}")
    except IntegrityError as error:
        print(f"nnsave: FAILED: {error}", file=sys.stderr)
        return EXIT_INTEGRITY
    except (NNSaveError, OSError) as error:
        print(f"nnsave: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK

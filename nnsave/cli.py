"""The ``nnsave`` command line: a thin front end over the public API."""

from __future__ import annotations

import argparse
import json
import sys
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
    inspect = commands.add_parser("inspect", help="describe a saved file without loading it")
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify = commands.add_parser(
        "verify", help="check a file against its manifest (exit 0 ok, 1 damaged, 2 usage)"
    )
    verify.add_argument("path", metavar="PATH")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        arguments = _parser().parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    try:
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

"""The ``nnsave`` command line: a thin front end over the public API.

Exit statuses: 0 all is well; 1 a file is damaged or refused (it does not
match its manifest, is not of its format, or is hostile); 2 bad usage, or a
path that is missing or not a file; 3 an internal error, reported in one line.
No command prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence

from . import api, keys
from ._version import __version__
from .errors import FormatError, IntegrityError, NNSaveError, UntrustedFileError

__all__ = ["main", "EXIT_OK", "EXIT_DAMAGED", "EXIT_USAGE", "EXIT_INTERNAL"]

EXIT_OK, EXIT_DAMAGED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
_LS_ROWS = 15
_WIDTH = 88


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnsave",
        description="Inspect and verify model files saved with nnsave.",
        epilog="Exit status: 0 ok, 1 damaged or refused, 2 usage or missing file, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"nnsave {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    inspect = commands.add_parser("inspect", help="describe a saved file or a TensorFlow checkpoint without loading it")
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify = commands.add_parser("verify", help="hash a file and check it against its manifest")
    verify.add_argument("path", metavar="PATH")
    listing = commands.add_parser("ls", help="list the checkpoints in a directory and whether each verifies")
    listing.add_argument("directory", metavar="DIR")
    listing.add_argument("--all", action="store_true", help=f"show every checkpoint, not only the newest {_LS_ROWS}")
    commands.add_parser("key", help="show where your signing key lives and its id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        arguments = _parser().parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    try:
        return _run(arguments)
    except BrokenPipeError:
        # The reader went away (`nnsave inspect --json f | head`): not an error.
        _silence_stdout()
        return EXIT_OK
    except (IntegrityError, FormatError, UntrustedFileError) as error:
        print(f"nnsave: FAILED: {error}", file=sys.stderr)
        return EXIT_DAMAGED
    except (NNSaveError, OSError) as error:
        print(f"nnsave: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nnsave: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the promise is one line, never a traceback
        print(f"nnsave: internal error: {type(error).__name__}: {error}. Please report it.", file=sys.stderr)
        return EXIT_INTERNAL


def _run(arguments: argparse.Namespace) -> int:
    if arguments.command == "ls":
        return _list_checkpoints(arguments.directory, arguments.all)
    if arguments.command == "key":
        return _show_key()
    if arguments.command == "inspect":
        info = api.inspect(arguments.path)
        print(json.dumps(info.to_dict(), indent=2) if arguments.json else info)
        return EXIT_OK
    info = api.verify(arguments.path)
    digest = ", ".join(f"{name} {value}" for name, value in info.digests.items())
    print(f"OK {info.path}: {info.size:,} bytes, {info.signature.value}")
    print(f"   {digest}")
    return EXIT_OK


def _show_key() -> int:
    location = keys.user_key_path()
    key = keys.resolve_key(None, create=False)
    if key is None:
        print(f"No signing key yet. nnsave creates one at {location} on your first save.")
    elif key.location is None:
        print(f"Signing with the key in {keys.KEY_VARIABLE} (id {key.key_id}); your own key file is {location}.")
    else:
        print(f"Your signing key: {location} (id {key.key_id}). Keep it private; it never leaves this machine.")
    return EXIT_OK


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
        print(_shorten(f"{line}  {tags}".rstrip(), _WIDTH))
    return EXIT_OK if all(row.verified for row in rows) else EXIT_DAMAGED


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would report the broken pipe again.
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())

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

from . import api, artifact, keys
from ._version import __version__
from .errors import FormatError, IntegrityError, NNSaveError, UntrustedFileError

__all__ = ["main", "EXIT_OK", "EXIT_DAMAGED", "EXIT_USAGE", "EXIT_INTERNAL"]

EXIT_OK, EXIT_DAMAGED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
_LS_ROWS = 15
_WIDTH = 88


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnsave",
        description="Inspect and verify model files saved with nnsave, on disk or on an object store "
        "(s3://, gs://, az://, memory:// URLs).",
        epilog="Exit status: 0 ok, 1 damaged or refused, 2 usage or missing file, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"nnsave {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # What every command that reads a path or URL takes.
    reach = argparse.ArgumentParser(add_help=False)
    reach.add_argument(
        "--storage-option", action="append", default=[], metavar="KEY=VALUE", type=_storage_option,
        help="an fsspec option for a URL (repeatable), e.g. endpoint_url=http://127.0.0.1:9000; "
        "VALUE is read as JSON if it parses (true, 3), else as text",
    )
    shown = argparse.ArgumentParser(add_help=False)
    shown.add_argument("--progress", action="store_true", help="show progress on stderr even when it is not a terminal")
    inspect = commands.add_parser("inspect", parents=[reach, shown],
                                  help="describe a saved file or a TensorFlow checkpoint without loading it")
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify = commands.add_parser("verify", parents=[reach, shown], help="hash a file and check it against its manifest")
    verify.add_argument("path", metavar="PATH")
    listing = commands.add_parser("ls", parents=[reach], help="list the checkpoints in a directory and whether each verifies")
    listing.add_argument("directory", metavar="DIR")
    listing.add_argument("--all", action="store_true", help=f"show every checkpoint, not only the newest {_LS_ROWS}")
    clean = commands.add_parser("clean", parents=[reach],
                                help="remove what interrupted saves left in a directory (on an object store: by age)")
    clean.add_argument("directory", metavar="DIR")
    clean.add_argument("--older-than", type=float, metavar="SECONDS", default=None,
                       help="object stores: leftovers older than this are stale (default: one hour)")
    commands.add_parser("key", help="show where your signing key lives and its id")
    return parser


def _storage_option(text: str) -> tuple[str, object]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


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
    if arguments.command == "key":
        return _show_key()
    options = dict(arguments.storage_option) or None
    if arguments.command == "ls":
        return _list_checkpoints(arguments.directory, arguments.all, options)
    if arguments.command == "clean":
        return _clean(arguments.directory, arguments.older_than, options)
    progress = arguments.progress or sys.stderr.isatty()
    if arguments.command == "inspect":
        info = api.inspect(arguments.path, storage_options=options, progress=progress)
        print(json.dumps(info.to_dict(), indent=2) if arguments.json else info)
        return EXIT_OK
    info = api.verify(arguments.path, storage_options=options, progress=progress)
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


def _clean(directory: str, older_than: float | None, options: dict | None) -> int:
    from .checkpoint.folder import CheckpointFolder

    folder = CheckpointFolder(directory, options).require()
    with folder.writing():
        handled = artifact.recover(folder.directory, older_than=older_than)
    for leftover in handled:
        print(f"removed or finished {leftover}")
    print(f"{folder.directory}: {len(handled)} leftover(s) of interrupted saves handled")
    return EXIT_OK


def _list_checkpoints(directory: str, show_all: bool, options: dict | None) -> int:
    from .checkpoint import list_checkpoints

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = list_checkpoints(directory, storage_options=options)
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

"""Time the book itself: each notebook's execution, and optionally ``make test``.

``python -m benchmarks.book_timing [--make-test]`` (or ``make bench-book``)
executes every notebook under ``book/`` the way ``make notebooks`` does, but
without writing the outputs back, and records the wall time of each in
``benchmarks/results/book_timing.json``, next to the lead's reference timings,
so that a chapter that becomes slow shows up. The appendix notebook reads it.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .run import RESULTS, ROOT, git_commit, machine_details

#: Measured by the lead with nbval (``pytest --nbval``) before this script
#: existed: seconds per notebook, and the whole ``make test``.
REFERENCE = {
    "source": "lead's measurement with nbval, before benchmarks/ existed",
    "pytest_seconds": 115.0,
    "pytest_items": 483,
    "make_test_seconds": 190.0,
    "nbval_seconds": {
        "checkpoints": 24.9, "choosing_format": 9.0, "math": 12.9, "overfitting": 32.2,
        "quickstart": 7.6, "saving_keras": 9.3, "sklearn_joblib": 9.2, "structure": 5.8,
        "tf1_legacy": 9.6, "training": 18.4, "troubleshooting": 4.4, "what_to_save": 13.9,
    },
}
#: The book's own limit for one notebook (RULES.md).
NOTEBOOK_LIMIT_S = 60.0


def notebooks(book: Path) -> list[Path]:
    return sorted(p for p in book.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def execute(path: Path) -> float:
    """Run one notebook in a fresh kernel, in its own folder; return the wall time."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=["--IPKernelApp.capture_fd_output=False", "--IPKernelApp.log_level=ERROR"],
    )
    began = time.perf_counter()
    client.execute()
    return time.perf_counter() - began


def time_make_test(log: Path) -> dict[str, Any]:
    """Run ``make test``; keep its output in ``log`` and pytest's summary line."""
    began = time.perf_counter()
    completed = subprocess.run(["make", "test"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - began
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(completed.stdout)
    summary = [line.strip(" =") for line in completed.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return {"seconds": round(seconds, 1), "returncode": completed.returncode, "summary": summary[-1] if summary else ""}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.book_timing", description=__doc__.split("\n")[0])
    parser.add_argument("--make-test", action="store_true", help="also time `make test` (several minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS / "book_timing.json")
    parser.add_argument("--keep-notebook-timings", action="store_true",
                        help="reuse the notebook timings already in --out (with --make-test: time make test only)")
    parser.add_argument("notebook", nargs="*", type=Path, help="only these notebooks (default: all of book/)")
    args = parser.parse_args(argv)
    chosen = [] if args.keep_notebook_timings else args.notebook or notebooks(ROOT / "book")
    timings = json.loads(args.out.read_text())["notebook_seconds"] if args.keep_notebook_timings else {}
    for path in chosen:
        path = path.resolve()
        seconds = execute(path)
        timings[path.stem] = round(seconds, 1)
        flag = "" if seconds <= NOTEBOOK_LIMIT_S else f"  over the {NOTEBOOK_LIMIT_S:.0f} s limit"
        print(f"{path.relative_to(ROOT)}: {seconds:.1f} s{flag}", flush=True)
    document = {
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "machine": machine_details(),
        "notebook_limit_seconds": NOTEBOOK_LIMIT_S,
        "notebook_seconds": timings,
        "notebooks_total_seconds": round(sum(timings.values()), 1),
        "make_test": time_make_test(ROOT / "_build" / "bench-book-make-test.log") if args.make_test else None,
        "reference": REFERENCE,
    }
    if document["make_test"]:
        result = document["make_test"]
        print(f"make test: {result['seconds']} s, exit {result['returncode']}: {result['summary']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

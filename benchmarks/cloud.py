"""Object stores: nnsave against plain s3fs on a local S3 server (moto, 127.0.0.1).

``python -m benchmarks.cloud [--quick] [--sizes 16 128] [--rounds 3] [--out DIR]``

For each size (MB of float64 arrays in a dict, saved as ``.joblib``):

- ``s3fs put`` / ``s3fs get``: the bytes of nnsave's file, moved with
  ``fs.pipe_file`` and ``fs.cat_file``: the transfer alone;
- ``joblib.dump + s3fs put``: serialise straight into an s3fs file object,
  with no hash and no manifest: the plain way to save to S3;
- ``nnsave save``: serialise, hash and upload by the five-step protocol;
- ``s3fs get + joblib.load``: download and deserialise, unverified;
- ``nnsave load``: download while hashing, verify, deserialise;
- ``nnsave verify``: download while hashing, compare with the manifest.

Figures are medians of ``--rounds`` runs after one warm-up, in seconds and
MB/s, written to ``cloud.json`` and ``cloud.md`` in ``benchmarks/results`` (with
``--quick``, one small size and one round, in ``_build/bench-quick``). The server is a Python process on this machine, so absolute speeds
say more about moto than about S3; the ratios are the point.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests._local_s3 import start_moto_server

from .run import QUICK_RESULTS, RESULTS


def _timed(action, rounds: int) -> float:
    action()  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(size_mb: int, rounds: int) -> dict[str, float]:
    import fsspec
    import joblib

    import nnsave

    payload = {"w": np.random.default_rng(size_mb).random(size_mb * 1_000_000 // 8)}
    fs = fsspec.filesystem("s3")
    bucket = f"bench-{size_mb}"
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    url, plain = f"s3://{bucket}/nnsave.joblib", f"{bucket}/plain.joblib"
    nnsave.save(payload, url)
    data = fs.cat_file(f"{bucket}/nnsave.joblib")
    figures = {
        "s3fs put": _timed(lambda: fs.pipe_file(plain, data), rounds),
        "joblib.dump + s3fs put": _timed(lambda: _dump(joblib, payload, fs, plain), rounds),
        "nnsave save": _timed(lambda: nnsave.save(payload, url), rounds),
        "s3fs get": _timed(lambda: fs.cat_file(plain), rounds),
        "s3fs get + joblib.load": _timed(lambda: joblib.load(io.BytesIO(fs.cat_file(plain))), rounds),
        "nnsave load": _timed(lambda: nnsave.load(url), rounds),
        "nnsave verify": _timed(lambda: nnsave.verify(url), rounds),
    }
    return {"bytes": len(data), "seconds": figures}


def _dump(joblib, payload, fs, key: str) -> None:
    with fs.open(key, "wb") as stream:
        joblib.dump(payload, stream)


def table(results: list[dict]) -> str:
    lines = ["| size | route | seconds | MB/s |", "|---|---|---|---|"]
    for result in results:
        for route, seconds in result["seconds"].items():
            rate = result["bytes"] / 1e6 / seconds
            lines.append(f"| {result['bytes'] / 1e6:.0f} MB | {route} | {seconds:.3f} | {rate:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 4 MB size, one round (CI smoke test)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="MB", help="default 16 128 (4 with --quick)")
    parser.add_argument("--rounds", type=int, help="default 3 (1 with --quick)")
    parser.add_argument("--out", type=Path, help="default benchmarks/results (_build/bench-quick with --quick)")
    arguments = parser.parse_args(argv)
    sizes = arguments.sizes or ([4] if arguments.quick else [16, 128])
    rounds = arguments.rounds or (1 if arguments.quick else 3)
    out = arguments.out or (QUICK_RESULTS if arguments.quick else RESULTS)
    server, endpoint = start_moto_server()
    scratch = tempfile.mkdtemp(prefix="nnsave-bench-cloud-")
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
        NNSAVE_KEY_FILE=os.path.join(scratch, "signing.key"), NNSAVE_CACHE_DIR=scratch,
    )
    try:
        results = [measure(size, rounds) for size in sizes]
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(scratch)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cloud.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "cloud.md").write_text(table(results) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

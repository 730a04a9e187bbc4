"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--out DIR]``.

How a measurement is taken
--------------------------
Each workload gets a fresh interpreter (a *parent*), started by this module.
The parent imports the libraries (TensorFlow takes about 4 s, which is why it
is imported once per workload and not once per run) and builds the payload
with numpy or scikit-learn, without running a single TensorFlow op. Then every
measured run is a child made with ``os.fork()``: a fresh process that starts
with the libraries imported and the payload in memory, does one save or one
load, and exits. Inside the child:

- the payload it does not need is dropped first (so a load starts without the
  parent's copy of the workload in its resident set), and three times the
  workload's size of memory is touched and freed (see ``_warm_memory``);
- a trivial TensorFlow op starts the runtime, outside the clock;
- the peak RSS is reset (``/proc/self/clear_refs``), the operation is timed with
  :func:`time.perf_counter`, and ``VmHWM`` is read: the peak resident memory
  of the process *during the operation*. ``ru_maxrss`` of the whole child
  (from :func:`os.wait4`) is kept too.

Runs go round-robin over the routes: round 0 is the warm-up and is dropped,
rounds 1..N are kept, and the figures are their medians. After each save the
parent fsyncs the new files (outside the clock), so that write-back from a
route that does not fsync cannot slow down the next measurement. Reads come
from the page cache, as they do right after a save.

The disk limit writes the same number of bytes as nnsave's file with
``os.write`` and ``os.fsync``, and reads them back into memory that is already
mapped: it measures moving the bytes, and nothing else.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QUICK_RESULTS = ROOT / "_build" / "bench-quick"
CHILD_TIMEOUT_S = 900
#: Each child touches and frees this many times its workload's size before it
#: is measured (see _warm_memory); Keras's load_model needs about three.
WARM_MEMORY_FACTOR = 3

#: Measurements beside the workloads, each in a parent of its own.
EXTRA_MEASUREMENTS = ("hashing", "checkpoint")
#: The ones ``--quick`` runs without being named: it must finish within a
#: minute in CI, and the checkpoint measurement alone starts three processes
#: that import TensorFlow (``--quick --only checkpoint`` runs it on 1 MB).
QUICK_EXTRA_MEASUREMENTS = ("hashing",)

#: What the parent built and a forked child inherits: the payload, the disk
#: route's bytes, the expected fingerprint.
SHARED: dict[str, Any] = {}


# --- pure helpers (tested in tests/test_benchmarks.py) ----------------------

def median(values: list[float]) -> float | None:
    """The median, or None for no values.

    >>> median([3.0, 1.0, 2.0]), median([])
    (2.0, None)
    """
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the measured runs of one operation, with the raw values kept.

    >>> summarize([{"seconds": 2.0, "peak_rss_mb": 10.0, "start_rss_mb": 5.0},
    ...            {"seconds": 1.0, "peak_rss_mb": 12.0, "start_rss_mb": 5.0},
    ...            {"seconds": 3.0, "peak_rss_mb": 11.0, "start_rss_mb": 5.0}])["seconds"]
    2.0
    """
    keys = ("seconds", "peak_rss_mb", "start_rss_mb", "process_peak_rss_mb")
    summary: dict[str, Any] = {key: median([r[key] for r in runs if r.get(key) is not None]) for key in keys}
    summary["runs_seconds"] = [round(r["seconds"], 4) for r in runs]
    summary["runs_peak_rss_mb"] = [round(r["peak_rss_mb"], 1) for r in runs if r.get("peak_rss_mb") is not None]
    return summary


def round_robin(route_names: list[str], rounds: int) -> list[tuple[int, str]]:
    """The order of runs: every route once per round, so slow spells hit all routes alike.

    >>> round_robin(["a", "b"], 2)
    [(0, 'a'), (0, 'b'), (1, 'a'), (1, 'b')]
    """
    return [(index, name) for index in range(rounds) for name in route_names]


def machine_details() -> dict[str, Any]:
    """CPU, cores, memory, OS and the versions of every library that is measured."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for package in ("nnsave", "numpy", "keras", "tensorflow", "h5py", "joblib", "scikit-learn", "skops", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def git_commit() -> str | None:
    try:
        output = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return output.stdout.strip() or None


# --- measuring inside a child -----------------------------------------------

def _status_mb(field: str) -> float | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _warm_memory(size: int) -> None:
    """Touch ``size`` bytes of fresh memory and free them again.

    On a virtual machine the host may take back memory the guest has freed;
    the next process to touch it then waits for the host, which here cost up
    to 2 s per GB, at random. Memory freed a moment ago is reused at once, so
    each run starts as on a machine whose memory is in use.
    """
    import numpy as np

    if size > 0:
        block = np.ones(size, dtype=np.uint8)
        del block


def _release_free_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def timed(operation: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run ``operation`` once; return its value with seconds, start RSS and peak RSS in MB."""
    gc.collect()
    start = _status_mb("VmRSS")
    reset = _reset_peak_rss()
    began = time.perf_counter()
    value = operation()
    seconds = time.perf_counter() - began
    peak = _status_mb("VmHWM") if reset else None
    return value, {"seconds": seconds, "start_rss_mb": start, "peak_rss_mb": peak}


def in_child(function: Callable[[], dict[str, Any]], timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Fork, run ``function`` in the child, return its dict plus the child's ``ru_maxrss``."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        code = 0
        try:
            payload = {"ok": True, **function()}
        except BaseException:  # report anything, then exit without running the parent's cleanup
            payload, code = {"ok": False, "error": traceback.format_exc(limit=12)}, 1
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(json.dumps(payload).encode("utf-8"))
        os._exit(code)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"ok": False, "error": f"timed out after {timeout} s"}
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, _, usage = os.wait4(pid, 0)
    try:
        result = json.loads(b"".join(chunks))
    except ValueError:
        result = {"ok": False, "error": "the child died without reporting"}
    result["process_peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


# --- the parent of one workload ----------------------------------------------

def _prepare(workload: Any) -> dict[str, Any]:
    """Import what the routes need and build the payload, before any fork."""
    from . import workloads as w

    import nnsave

    context: dict[str, Any] = {"kind": workload.kind}
    if workload.kind == "keras":
        nnsave.seed_everything(0)  # imports TensorFlow and Keras, runs no op
        import keras  # noqa: F401

        SHARED["weights"] = w.dense_stack_weights(workload.params["width"], workload.params["layers"])
    elif workload.kind == "forest":
        SHARED["payload"] = w.fit_forest(**workload.params)
    else:
        SHARED["payload"] = w.make_arrays(workload.params["count"], workload.params["array_bytes"])
    # Import everything a route imports lazily, so that no import is timed.
    import h5py  # noqa: F401
    import joblib  # noqa: F401
    import safetensors.numpy  # noqa: F401
    import skops.io  # noqa: F401

    if workload.kind == "keras":
        SHARED["fingerprint"] = w.fingerprint("weights", SHARED["weights"])
    else:
        SHARED["fingerprint"] = w.fingerprint(workload.kind, SHARED["payload"])
    # TensorFlow's modules hold millions of objects, and a full collection of
    # them takes 0.2 s. Frozen, the children's collections skip them (and
    # reference counting still frees the payload when a child drops it).
    gc.collect()
    gc.freeze()
    return context


def _child_setup(workload: Any, keep: tuple[str, ...]) -> None:
    """In a child: drop the inherited data it does not need, warm memory, start TensorFlow's runtime."""
    for key in [key for key in SHARED if key not in keep]:
        del SHARED[key]
    _release_free_memory()
    _warm_memory(WARM_MEMORY_FACTOR * workload.nominal_bytes)
    if workload.kind == "keras":
        import keras

        keras.ops.convert_to_numpy(keras.ops.zeros((2,)) + 1)


def _build_model(workload: Any, with_weights: bool) -> Any:
    import keras

    from .workloads import build_dense_stack

    model = build_dense_stack(keras, workload.params["width"], workload.params["layers"])
    if with_weights:
        model.set_weights(SHARED["weights"])
    return model


def _save_run(workload: Any, route: Any, folder: Path, context: dict[str, Any]) -> dict[str, Any]:
    def child() -> dict[str, Any]:
        keep = ("disk_bytes",) if route.name == "disk" else ("payload", "weights")
        _child_setup(workload, keep)
        local = dict(context, disk_bytes=SHARED.get("disk_bytes"))
        if workload.kind == "keras" and route.name != "disk":
            obj = _build_model(workload, with_weights=True)
            SHARED.pop("weights", None)
            _release_free_memory()
        else:
            obj = SHARED.get("payload")
        path, figures = timed(lambda: route.save(obj, folder, local))
        return {**figures, "path": str(path)}

    folder.mkdir(parents=True)
    return in_child(child)


def _load_run(workload: Any, route: Any, path: Path, context: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from .workloads import fingerprint

    def child() -> dict[str, Any]:
        _child_setup(workload, ("fingerprint",))
        _prime_digest_cache(path, route.repeat_load)
        local = dict(context)
        if route.needs_skeleton:
            local["skeleton"] = _build_model(workload, with_weights=False)
        if route.name == "disk":
            local["read_buffer"] = np.ones(path.stat().st_size, dtype=np.uint8)  # mapped and touched
        obj, figures = timed(lambda: route.load(path, local))
        if route.name != "disk":
            restored = fingerprint(workload.kind, obj)
            if restored != SHARED["fingerprint"]:
                raise AssertionError(f"{route.name} restored different values: {restored[:3]} != {SHARED['fingerprint'][:3]}")
        return figures

    return in_child(child)


def _prime_digest_cache(path: Path, repeat_load: bool) -> None:
    """Untimed, in a child: switch nnsave's digest cache off, or fill it as an earlier load would."""
    from nnsave import digest_cache, storage
    from nnsave.hashing import DEFAULT_ALGORITHM, hash_buffer

    os.environ[digest_cache.SWITCH_VARIABLE] = "on" if repeat_load else "off"
    if repeat_load and path.stat().st_size >= digest_cache.MIN_CACHED_BYTES:
        settled_at = path.stat().st_ctime + digest_cache.RACY_SECONDS + 0.1
        time.sleep(max(0.0, settled_at - time.time()))
        with storage.open_regular(path) as handle:
            digest_cache.digest_of(
                handle, DEFAULT_ALGORITHM, lambda: hash_buffer(handle.contents(), [DEFAULT_ALGORITHM])
            )


def _settle(folder: Path) -> int:
    """fsync every file the save wrote (untimed); return their total size."""
    total = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            total += path.stat().st_size
    return total


def measure_workload(workload: Any, rounds: int, scratch: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """All routes of one workload, round-robin; round 0 is the warm-up."""
    import numpy as np

    from .routes import routes_for

    context = _prepare(workload)
    routes = {route.name: route for route in routes_for(workload.kind)}
    raw: dict[str, dict[str, list]] = {name: {"save": [], "load": [], "bytes": []} for name in routes}
    needed_later = {route.loads_from for route in routes.values() if route.loads_from}
    # A source folder goes once the last route that reads it has run.
    last_reader = {route.loads_from: name for name, route in routes.items() if route.loads_from}
    for index, name in round_robin(list(routes), rounds):
        route = routes[name]
        if name == "disk" and "disk_bytes" not in SHARED:
            size = raw["nnsave"]["bytes"][-1]
            SHARED["disk_bytes"] = np.frombuffer(np.random.default_rng(1).bytes(size), dtype=np.uint8)
        folder = scratch / f"{workload.name}-{name}-{index}"
        if route.loads_from:
            source = scratch / f"{workload.name}-{route.loads_from}-{index}"
            path = Path(raw[route.loads_from]["paths"][-1])
            saved = None
        else:
            saved = _save_run(workload, route, folder, context)
            if not saved["ok"]:
                raise RuntimeError(f"{workload.name} / {name}: save failed\n{saved['error']}")
            path = Path(saved["path"])
            raw[name].setdefault("paths", []).append(str(path))
            raw[name]["bytes"].append(_settle(folder))
        loaded = _load_run(workload, route, path, context)
        if not loaded["ok"]:
            raise RuntimeError(f"{workload.name} / {name}: load failed\n{loaded['error']}")
        if index > 0:
            if saved:
                raw[name]["save"].append(saved)
            raw[name]["load"].append(loaded)
        log(
            f"  {workload.name:12} {name:13} round {index}: "
            + (f"save {saved['seconds']:7.3f} s  " if saved else " " * 16)
            + f"load {loaded['seconds']:7.3f} s"
        )
        if route.loads_from and last_reader[route.loads_from] == name:
            shutil.rmtree(source, ignore_errors=True)
        elif name not in needed_later:
            shutil.rmtree(folder, ignore_errors=True)
    results = {}
    for name, route in routes.items():
        entry: dict[str, Any] = {"label": route.label, "load": summarize(raw[name]["load"])}
        if route.loads_from:
            entry["loads_from"] = route.loads_from
        else:
            entry["save"] = summarize(raw[name]["save"])
            entry["file_bytes"] = raw[name]["bytes"][-1]
        results[name] = entry
    return {
        "name": workload.name,
        "kind": workload.kind,
        "nominal_bytes": workload.nominal_bytes,
        "description": workload.description,
        "params": workload.params,
        "routes": results,
    }


def measure_hashing(size: int, rounds: int, scratch: Path) -> dict[str, Any]:
    """nnsave's verifying read (open once, map, BLAKE3) of a file in the page cache; BLAKE3 and SHA-256 over memory."""
    import hashlib

    import numpy as np

    from nnsave import storage
    from nnsave.hashing import DEFAULT_ALGORITHM, hash_buffer

    path = scratch / "hash.bin"
    data = np.random.default_rng(2).integers(0, 256, size, dtype=np.uint8)
    with open(path, "wb") as handle:
        handle.write(memoryview(data))
        handle.flush()
        os.fsync(handle.fileno())
    memory = memoryview(data[: min(size, 256 << 20)])

    def child() -> dict[str, Any]:
        def verify_read() -> None:
            with storage.open_regular(path) as handle:
                hash_buffer(handle.contents(), [DEFAULT_ALGORITHM])

        _, from_file = timed(verify_read)
        began = time.perf_counter()
        hashlib.sha256(memory).digest()
        sha256_seconds = time.perf_counter() - began
        began = time.perf_counter()
        hash_buffer(memory, [DEFAULT_ALGORITHM])
        return {"file_seconds": from_file["seconds"], "memory_seconds": sha256_seconds,
                "blake3_memory_seconds": time.perf_counter() - began}

    runs = []
    for index in range(rounds):
        result = in_child(child)
        if not result["ok"]:
            raise RuntimeError(result["error"])
        if index > 0:
            runs.append(result)
    path.unlink()
    file_seconds = median([r["file_seconds"] for r in runs])
    memory_seconds = median([r["memory_seconds"] for r in runs])
    blake3_seconds = median([r["blake3_memory_seconds"] for r in runs])
    return {
        "file_bytes": size,
        "runs_seconds": [round(r["file_seconds"], 4) for r in runs],
        "hash_file_gbps": size / file_seconds / 1e9,
        "sha256_memory_gbps": len(memory) / memory_seconds / 1e9,
        "blake3_memory_gbps": len(memory) / blake3_seconds / 1e9,
    }


def measure_checkpointing(workload: Any, rounds: int, scratch: Path) -> dict[str, Any]:
    """How long a checkpoint holds up training, with ``Checkpointer(background=False)`` and ``True``.

    One child per mode compiles the workload's model with Adam (whose state
    makes the checkpoint three times the weights) and calls the callback's
    ``on_epoch_end`` as ``fit`` does, once per round. *Blocked* is how long
    that call takes on the training thread. With ``background=True`` it is
    the snapshot into host memory; the rest of the write, timed by ``wait()``
    right after, overlaps with the next epoch in real training (it blocks
    only if an epoch is shorter than the write).
    """
    import keras

    import nnsave

    _prepare(workload)

    def child(background: bool) -> dict[str, Any]:
        _child_setup(workload, ("weights",))
        model = _build_model(workload, with_weights=True)
        model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
        model.optimizer.build(model.trainable_variables)  # its state exists, as after a training step
        folder = scratch / f"checkpoints-{background}"
        checkpointer = nnsave.Checkpointer(folder, max_to_keep=2, background=background)
        checkpointer.set_model(model)
        checkpointer.on_train_begin()
        blocked, written = [], []
        for epoch in range(rounds):
            began = time.perf_counter()
            checkpointer.on_epoch_end(epoch, {"loss": 1.0})
            blocked.append(time.perf_counter() - began)
            checkpointer.wait()
            written.append(time.perf_counter() - began)
        file_bytes = nnsave.latest_checkpoint(folder).stat().st_size
        shutil.rmtree(folder)
        # Round 0 is the warm-up.
        return {"blocked_seconds": blocked[1:], "written_seconds": written[1:], "file_bytes": file_bytes}

    figures: dict[str, Any] = {"name": workload.name, "description": workload.description}
    for background in (False, True):
        result = in_child(lambda: child(background))
        if not result["ok"]:
            raise RuntimeError(result["error"])
        figures["file_bytes"] = result["file_bytes"]
        figures["background" if background else "synchronous"] = {
            "blocked_seconds": median(result["blocked_seconds"]),
            "written_seconds": median(result["written_seconds"]),
            "runs_blocked_seconds": [round(seconds, 4) for seconds in result["blocked_seconds"]],
        }
    return figures


def _parent_main(args: argparse.Namespace) -> None:
    """Entry point of the per-workload parent process."""
    from .workloads import QUICK_WORKLOADS, WORKLOADS

    scratch = Path(args.scratch)
    rounds = args.runs + 1
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.parent == "hashing":
        result = measure_hashing((64 << 20) if args.quick else (1 << 30), rounds, scratch)
    elif args.parent == "checkpoint":
        workload = next(w for w in WORKLOADS if w.name == ("keras-1MB" if args.quick else "keras-100MB"))
        result = measure_checkpointing(workload, rounds, scratch)
    else:
        workload = next(w for w in (QUICK_WORKLOADS if args.quick else WORKLOADS) if w.name == args.parent)
        result = measure_workload(workload, rounds, scratch, log)
    Path(args.result).write_text(json.dumps(result))


# --- the orchestrator ----------------------------------------------------------

def _run_parent(name: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    result_file = scratch / f"{name}.json"
    command = [sys.executable, "-m", "benchmarks.run", "--parent", name, "--scratch", str(scratch),
               "--result", str(result_file), "--runs", str(args.runs)] + (["--quick"] if args.quick else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="0", PYTHONHASHSEED="0",
               NNSAVE_CACHE_DIR=str(scratch / "digest-cache"))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if line.startswith("  "):
            print(line, end="", flush=True)
    if process.wait() != 0:
        sys.stdout.write("".join(lines[-40:]))
        raise SystemExit(f"benchmark {name} failed")
    return json.loads(result_file.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads only (CI smoke test, 1-2 minutes)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per route, after one warm-up (default 3)")
    parser.add_argument("--only", action="append", default=[], help="run only this workload (repeatable); skips hashing and checkpoint unless named")
    parser.add_argument("--out", type=Path, help="output folder (default benchmarks/results, or _build/bench-quick with --quick)")
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--parent", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.parent:
        _parent_main(args)
        return
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from . import report
    from .workloads import QUICK_WORKLOADS, WORKLOADS

    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    chosen = [w.name for w in (QUICK_WORKLOADS if args.quick else WORKLOADS)]
    if args.only:
        unknown = set(args.only) - set(chosen) - set(EXTRA_MEASUREMENTS)
        if unknown:
            parser.error(f"unknown workloads {sorted(unknown)}; choose from {chosen + list(EXTRA_MEASUREMENTS)}")
        chosen = [name for name in chosen + list(EXTRA_MEASUREMENTS) if name in args.only]
    else:
        chosen += QUICK_EXTRA_MEASUREMENTS if args.quick else EXTRA_MEASUREMENTS
    began = time.perf_counter()
    results: dict[str, Any] = {
        "schema": 1,
        "mode": "quick" if args.quick else "full",
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "machine": machine_details(),
        "settings": {"measured_runs": args.runs, "warmup_runs": 1, "statistic": "median"},
        "workloads": [],
        "hashing": None,
        "checkpoint": None,
    }
    with tempfile.TemporaryDirectory(prefix="nnsave-bench-") as scratch:
        for name in chosen:
            print(f"{name} ...", flush=True)
            started = time.perf_counter()
            result = _run_parent(name, args, Path(scratch))
            result["wall_seconds"] = round(time.perf_counter() - started, 1)
            print(f"{name}: {result['wall_seconds']:.0f} s", flush=True)
            if name in EXTRA_MEASUREMENTS:
                results[name] = result
            else:
                results["workloads"].append(result)
    results["duration_s"] = round(time.perf_counter() - began, 1)
    results["targets"] = report.evaluate_targets(results)
    paths = report.write_all(results, out)
    print(report.markdown(results))
    print(f"took {results['duration_s']:.0f} s; wrote " + ", ".join(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p) for p in paths))


if __name__ == "__main__":
    main()

"""Turn a results document into target verdicts, a markdown table and a plot.

Everything here is a pure function of the results dict that
:mod:`benchmarks.run` writes, so it is tested without timing anything, and the
book's appendix can show the same numbers from the committed JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "LIMITS",
    "RAW_ROUTE",
    "TARGET_PAIRS",
    "ratio",
    "evaluate_targets",
    "ratio_rows",
    "route_rows",
    "markdown",
    "plot",
    "write_all",
]

#: The issue's targets.
LIMITS = {"save_ratio": 1.10, "load_ratio": 1.25, "rss_factor": 1.1, "rss_allowance_mb": 64.0,
          "mmap_load_s": 0.1, "hash_gbps": 5.0, "checkpoint_blocked_ratio": 0.10}
#: The raw route nnsave is compared with, per workload kind.
RAW_ROUTE = {"keras": "keras", "forest": "joblib", "arrays": "joblib"}
#: Every (nnsave route, raw route of the same format) pair held to targets 1-3.
TARGET_PAIRS = {
    "keras": [("nnsave", "keras")],
    "forest": [("nnsave", "joblib"), ("nnsave-skops", "skops")],
    "arrays": [("nnsave", "joblib"), ("nnsave-skops", "skops")],
}
#: The raw route made as durable as nnsave's save (fsync of file and folder):
#: the same target, measured against what nnsave promises.
DURABLE_RAW_ROUTE = {"keras": "keras-fsync", "forest": "joblib-fsync", "arrays": "joblib-fsync"}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0.

    >>> ratio(3.0, 2.0), ratio(1.0, 0.0), ratio(None, 1.0)
    (1.5, None, None)
    """
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _figure(workload: dict[str, Any], route: str, operation: str, key: str = "seconds") -> float | None:
    entry = workload["routes"].get(route, {}).get(operation)
    return None if entry is None else entry.get(key)


def _fastest(workload: dict[str, Any], route: str, operation: str) -> float | None:
    """The fastest measured run: on a busy machine, the best estimate of the cost itself."""
    entry = workload["routes"].get(route, {}).get(operation)
    runs = [] if entry is None else entry.get("runs_seconds") or []
    return min(runs) if runs else None


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per target and workload: the measured value, the limit, and whether it is met."""
    verdicts: list[dict[str, Any]] = []

    def add(target: str, workload: str, value: float | None, limit: float, met: bool | None, detail: str,
            fastest: float | None = None) -> None:
        verdicts.append({"target": target, "workload": workload, "value": value, "limit": limit,
                         "met": met, "detail": detail, "fastest_runs_value": fastest})

    for workload in results.get("workloads", []):
        name = workload["name"]
        for mine, raw in TARGET_PAIRS[workload["kind"]]:
            if mine not in workload["routes"] or raw not in workload["routes"]:
                continue
            save = ratio(_figure(workload, mine, "save"), _figure(workload, raw, "save"))
            add("save time", name, save, LIMITS["save_ratio"], None if save is None else save <= LIMITS["save_ratio"],
                f"{mine} / {raw}", ratio(_fastest(workload, mine, "save"), _fastest(workload, raw, "save")))
            load = ratio(_figure(workload, mine, "load"), _figure(workload, raw, "load"))
            add("load time", name, load, LIMITS["load_ratio"], None if load is None else load <= LIMITS["load_ratio"],
                f"{mine} / {raw}", ratio(_fastest(workload, mine, "load"), _fastest(workload, raw, "load")))
            ours = _figure(workload, mine, "save", "peak_rss_mb")
            theirs = _figure(workload, raw, "save", "peak_rss_mb")
            if ours is not None and theirs is not None:
                allowed = LIMITS["rss_factor"] * theirs + LIMITS["rss_allowance_mb"]
                add("peak RSS during save", name, ours, allowed, ours <= allowed,
                    f"{mine} {ours:.0f} MB, {raw} {theirs:.0f} MB")
        raw, durable = RAW_ROUTE[workload["kind"]], DURABLE_RAW_ROUTE[workload["kind"]]
        save = ratio(_figure(workload, "nnsave", "save"), _figure(workload, durable, "save"))
        if save is not None:
            add("save time, raw made durable", name, save, LIMITS["save_ratio"], save <= LIMITS["save_ratio"],
                f"nnsave / {durable}", ratio(_fastest(workload, "nnsave", "save"), _fastest(workload, durable, "save")))
        load = ratio(_figure(workload, "nnsave-repeat", "load"), _figure(workload, raw, "load"))
        if load is not None:
            add("load time, repeat load", name, load, LIMITS["load_ratio"], load <= LIMITS["load_ratio"],
                f"nnsave-repeat / {raw}", ratio(_fastest(workload, "nnsave-repeat", "load"), _fastest(workload, raw, "load")))
    arrays = [w for w in results.get("workloads", []) if w["kind"] == "arrays"]
    if arrays:
        biggest = max(arrays, key=lambda w: w["nominal_bytes"])
        for route, when in (("nnsave-mmap", "first load"), ("nnsave-mmap-repeat", "repeat load")):
            seconds = _figure(biggest, route, "load")
            if seconds is not None:
                add(f"mmap load, {when}", biggest["name"], seconds, LIMITS["mmap_load_s"],
                    seconds <= LIMITS["mmap_load_s"], f"{route}: nnsave.load(mmap_mode='r'), seconds")
    hashing = results.get("hashing")
    if hashing:
        speed = hashing["hash_file_gbps"]
        add("hashing", "-", speed, LIMITS["hash_gbps"], speed >= LIMITS["hash_gbps"], "verifying read (BLAKE3), GB/s")
    checkpoint = results.get("checkpoint")
    if checkpoint:
        share = ratio(checkpoint["background"]["blocked_seconds"], checkpoint["synchronous"]["blocked_seconds"])
        if share is not None:
            add("checkpoint blocks training", checkpoint["name"], share, LIMITS["checkpoint_blocked_ratio"],
                share <= LIMITS["checkpoint_blocked_ratio"], "background=True / background=False, time blocked")
    return verdicts


def ratio_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per workload: nnsave against the raw route, and the raw route against the disk limit."""
    rows = []
    speed = (results.get("hashing") or {}).get("hash_file_gbps")
    for workload in results.get("workloads", []):
        raw = RAW_ROUTE[workload["kind"]]
        size = workload["routes"].get("nnsave", {}).get("file_bytes")
        mine_save, raw_save = _figure(workload, "nnsave", "save"), _figure(workload, raw, "save")
        mine_load, raw_load = _figure(workload, "nnsave", "load"), _figure(workload, raw, "load")
        rows.append({
            "workload": workload["name"],
            "raw": raw,
            "save_extra_s": None if mine_save is None or raw_save is None else mine_save - raw_save,
            "load_extra_s": None if mine_load is None or raw_load is None else mine_load - raw_load,
            "hash_s": None if not speed or size is None else size / (speed * 1e9),
            "save_vs_raw": ratio(_figure(workload, "nnsave", "save"), _figure(workload, raw, "save")),
            "load_vs_raw": ratio(_figure(workload, "nnsave", "load"), _figure(workload, raw, "load")),
            "save_rss_nnsave_mb": _figure(workload, "nnsave", "save", "peak_rss_mb"),
            "save_rss_raw_mb": _figure(workload, raw, "save", "peak_rss_mb"),
            "raw_save_vs_disk": ratio(_figure(workload, raw, "save"), _figure(workload, "disk", "save")),
            "raw_load_vs_disk": ratio(_figure(workload, raw, "load"), _figure(workload, "disk", "load")),
            "nnsave_save_vs_disk": ratio(_figure(workload, "nnsave", "save"), _figure(workload, "disk", "save")),
            "nnsave_load_vs_disk": ratio(_figure(workload, "nnsave", "load"), _figure(workload, "disk", "load")),
        })
    return rows


def route_rows(workload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every route of one workload: medians, ratios to the disk limit, memory and size."""
    disk_save, disk_load = _figure(workload, "disk", "save"), _figure(workload, "disk", "load")
    rows = []
    for name, entry in workload["routes"].items():
        save = entry.get("save") or {}
        load = entry.get("load") or {}
        rows.append({
            "route": name,
            "label": entry["label"],
            "save_s": save.get("seconds"),
            "load_s": load.get("seconds"),
            "save_vs_disk": ratio(save.get("seconds"), disk_save),
            "load_vs_disk": ratio(load.get("seconds"), disk_load),
            "save_peak_mb": save.get("peak_rss_mb"),
            "load_peak_mb": load.get("peak_rss_mb"),
            "file_mib": entry["file_bytes"] / 2**20 if "file_bytes" in entry else None,
        })
    return rows


def _cell(value: Any, spec: str = ".2f", suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return f"{value:{spec}}{suffix}"


def markdown(results: dict[str, Any]) -> str:
    """The whole report as markdown: machine, targets, ratios, every route, hashing."""
    machine = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [
        f"# nnsave benchmarks ({results['mode']} run)",
        "",
        f"{results['created_utc']}, commit {results.get('commit') or '?'}; {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['memory_gb']} GB RAM, {machine['system']}, Python {machine['python']}.",
        f"{versions}.",
        f"Median of {results['settings']['measured_runs']} runs after {results['settings']['warmup_runs']} warm-up; "
        f"each run a fresh forked process. Whole run: {results.get('duration_s', 0):.0f} s.",
        "",
        "## Targets",
        "",
        "Time targets are judged on medians, as the issue asks; *fastest runs* is the same "
        "ratio from each route's fastest run, which a busy machine disturbs less.",
        "",
        "| target | workload | measured (medians) | fastest runs | limit | met |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for verdict in results.get("targets", []):
        spec = ".3f" if verdict["target"].startswith("mmap load") else ".2f"
        lines.append(f"| {verdict['target']} ({verdict['detail']}) | {verdict['workload']} | "
                     f"{_cell(verdict['value'], spec)} | {_cell(verdict.get('fastest_runs_value'), spec)} | "
                     f"{_cell(verdict['limit'], spec)} | {_cell(verdict['met'])} |")
    lines += [
        "",
        "## Ratios",
        "",
        "nnsave against the raw route of the same format, and both against the disk limit "
        "(the same bytes written with write + fsync, and read back). *Hashing the file* is the "
        "file's size divided by the measured hashing speed: what one BLAKE3 pass costs.",
        "",
        "| workload | raw route | save nnsave/raw | load nnsave/raw | extra save s | extra load s | hashing the file s "
        "| save peak RSS nnsave / raw (MB) | raw save / disk | raw load / disk | nnsave save / disk | nnsave load / disk |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ratio_rows(results):
        lines.append(
            f"| {row['workload']} | {row['raw']} | {_cell(row['save_vs_raw'])} | {_cell(row['load_vs_raw'])} | "
            f"{_cell(row['save_extra_s'], '.3f')} | {_cell(row['load_extra_s'], '.3f')} | {_cell(row['hash_s'], '.3f')} | "
            f"{_cell(row['save_rss_nnsave_mb'], '.0f')} / {_cell(row['save_rss_raw_mb'], '.0f')} | "
            f"{_cell(row['raw_save_vs_disk'], '.1f')} | {_cell(row['raw_load_vs_disk'], '.1f')} | "
            f"{_cell(row['nnsave_save_vs_disk'], '.1f')} | {_cell(row['nnsave_load_vs_disk'], '.1f')} |"
        )
    for workload in results.get("workloads", []):
        lines += [
            "",
            f"## {workload['name']}: {workload['description']}",
            "",
            "| route | calls | save s | load s | save / disk | load / disk | save peak MB | load peak MB | file MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in route_rows(workload):
            lines.append(
                f"| {row['route']} | {row['label']} | {_cell(row['save_s'], '.3f')} | {_cell(row['load_s'], '.3f')} | "
                f"{_cell(row['save_vs_disk'], '.2f')} | {_cell(row['load_vs_disk'], '.2f')} | "
                f"{_cell(row['save_peak_mb'], '.0f')} | {_cell(row['load_peak_mb'], '.0f')} | {_cell(row['file_mib'], '.1f')} |"
            )
    hashing = results.get("hashing")
    if hashing:
        lines += [
            "",
            "## Hashing",
            "",
            f"nnsave's verifying read (BLAKE3) of a {hashing['file_bytes'] / 2**20:.0f} MiB file in the page cache: "
            f"{hashing['hash_file_gbps']:.2f} GB/s. Over memory: BLAKE3 "
            f"{_cell(hashing.get('blake3_memory_gbps'))} GB/s, SHA-256 {hashing['sha256_memory_gbps']:.2f} GB/s.",
        ]
    checkpoint = results.get("checkpoint")
    if checkpoint:
        lines += [
            "",
            f"## Checkpoints: {checkpoint['name']}, {checkpoint['file_bytes'] / 2**20:.0f} MiB per checkpoint",
            "",
            f"{checkpoint['description']}, compiled with Adam. *Blocked*: how long the callback's "
            "`on_epoch_end` holds up training. *Written*: until the checkpoint is in place; with "
            "`background=True` the part after the snapshot overlaps with the next epoch.",
            "",
            "| Checkpointer | blocked s | written s |",
            "|---|---:|---:|",
        ]
        for mode in ("synchronous", "background"):
            figures = checkpoint[mode]
            lines.append(f"| {mode} | {figures['blocked_seconds']:.3f} | {figures['written_seconds']:.3f} |")

    return "\n".join(lines) + "\n"


#: A fixed colour per route, shared by the plot here and the book's figure.
COLORS = {
    "nnsave": "#1b5e20", "nnsave-repeat": "#2e7d32", "nnsave-mmap": "#66bb6a", "nnsave-mmap-repeat": "#81c784", "nnsave-skops": "#a5d6a7", "keras": "#b71c1c", "keras-weights": "#ef6c00",
    "safetensors": "#6a1b9a", "nnsave-safetensors": "#00838f", "joblib": "#1565c0", "joblib-mmap": "#64b5f6",
    "joblib-c3": "#283593", "pickle": "#795548", "skops": "#9e9d24", "disk": "#424242",
}


def plot(results: dict[str, Any], path: Path) -> Path:
    """Save and load time of every route relative to the disk limit, one group per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    workloads = results["workloads"]
    names = [n for n in COLORS if n != "disk" and any(n in w["routes"] for w in workloads)]
    fig, axes = plt.subplots(2, 1, figsize=(12, 7.5), sharex=True)
    for axis, operation in zip(axes, ("save", "load")):
        for index, workload in enumerate(workloads):
            present = [n for n in names if n in workload["routes"]]
            width = 0.8 / len(present)
            for offset, name in enumerate(present):
                value = ratio(_figure(workload, name, operation), _figure(workload, "disk", operation))
                if value is not None:
                    axis.bar(index - 0.4 + width * (offset + 0.5), value, width=width, color=COLORS[name])
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_yscale("log")
        axis.set_ylabel(f"{operation} time / disk limit")
        axis.grid(axis="y", which="major", alpha=0.3)
    axes[-1].set_xticks(range(len(workloads)), [w["name"] for w in workloads])
    handles = [Patch(color=COLORS[name], label=name) for name in names]
    fig.legend(handles=handles, ncol=6, fontsize=9, loc="upper center", bbox_to_anchor=(0.5, 0.955))
    fig.suptitle("Time relative to writing (top) and reading (bottom) the same bytes with plain file IO; lower is better")
    fig.tight_layout(rect=(0, 0, 1, 0.89))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(results: dict[str, Any], folder: Path) -> list[Path]:
    """Write ``bench.json``, ``bench.md`` and ``bench.png`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    document = folder / "bench.json"
    document.write_text(json.dumps(results, indent=1) + "\n")
    table = folder / "bench.md"
    table.write_text(markdown(results))
    return [document, table, plot(results, folder / "bench.png")]

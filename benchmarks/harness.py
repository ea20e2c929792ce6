"""Shared machinery: a gardend under test, bare containerd beside it, timing and reporting.

Every figure is measured in the same run, on the same rootfs and the same containerd, as
gardend and as the closest bare-containerd equivalent; results are medians with min and
max, and the ratio gardend / bare.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gardend.client import GardenClient

ROOTFS = os.environ.get("GARDEND_BENCH_ROOTFS", "/var/lib/gardend/rootfs/busybox")
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Figure:
    """One measured quantity for gardend and (when it has one) bare containerd."""

    name: str
    unit: str
    gardend: list[float]
    bare: list[float] = field(default_factory=list)
    higher_is_better: bool = False
    note: str = ""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed attempts per side ("gardend", "bare"), for figures that count them."""

    @staticmethod
    def _stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {
            "median": statistics.median(values),
            "p99": percentile(values, 99),
            "min": min(values),
            "max": max(values),
            "n": len(values),
        }

    def summary(self) -> dict[str, Any]:
        g, b = self._stats(self.gardend), self._stats(self.bare)
        ratio = g["median"] / b["median"] if g and b and b["median"] else None
        return {**asdict(self), "gardend_stats": g, "bare_stats": b, "ratio": ratio}


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``th percentile: a value that was measured, never interpolated."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Gardend:
    """A gardend subprocess with its own depot and containerd, as a user would run it."""

    url: str
    depot: Path
    process: asyncio.subprocess.Process
    containerd_socket: str

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.asynccontextmanager
async def running_gardend(*extra: str) -> AsyncIterator[Gardend]:
    depot = Path(tempfile.mkdtemp(prefix="gdb-", dir="/tmp"))
    depot.chmod(0o755)
    port = free_port()
    log = open(depot / "gardend.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gardend", "--depot", str(depot / "depot"), "--bind-port", str(port),
        "--default-rootfs", ROOTFS, "--log-level", "warning", *extra,
        stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    client = GardenClient(url)
    try:
        for _ in range(300):
            with contextlib.suppress(Exception):
                await client.ping()
                break
            if proc.returncode is not None:
                raise RuntimeError(f"gardend exited; see {depot / 'gardend.log'}")
            await asyncio.sleep(0.1)
        yield Gardend(url, depot, proc, str(depot / "depot" / "containerd" / "containerd.sock"))
    finally:
        await client.close()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        log.close()
        shutil.rmtree(depot, ignore_errors=True)


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


async def repeat(n: int, fn: Callable[[], Awaitable[Any]]) -> list[float]:
    return [await timed(fn) for _ in range(n)]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def report(figures: list[Figure], machine: dict[str, Any]) -> str:
    """A table for people; the JSON beside it for tools."""
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": machine, "figures": [f.summary() for f in figures]}
    (RESULTS / "latest.json").write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        f"{'figure':<44} {'unit':<6} {'gardend median [min-max]':<28} {'bare median [min-max]':<28} ratio",
    ]
    for f in figures:
        s = f.summary()

        def cell(st: dict[str, float] | None) -> str:
            return f"{st['median']:.4g} [{st['min']:.3g}-{st['max']:.3g}]" if st else "-"

        ratio = f"{s['ratio']:.2f}" if s["ratio"] is not None else "-"
        errors = "".join(f" ({side} errors: {count})" for side, count in f.errors.items() if count)
        lines.append(
            f"{f.name:<44} {f.unit:<6} {cell(s['gardend_stats']):<28} {cell(s['bare_stats']):<28} {ratio}{errors}"
        )
    return "\n".join(lines)


def machine_facts() -> dict[str, Any]:
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": os.uname().release, "python": sys.version.split()[0]}

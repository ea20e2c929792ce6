"""Runs every benchmark: ``python -m benchmarks.run`` (``--quick`` for fewer repetitions).

Prints a table and writes benchmarks/results/latest.json. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path

from benchmarks import processes, streaming
from benchmarks.bare import BareContainerd
from benchmarks.harness import ROOTFS, Figure, Gardend, machine_facts, repeat, report, rss_bytes, running_gardend
from gardend.client import GardenClient

BENCH_POOL = "10.254.240.0/22"
"""Its own pool, so the benchmark runs beside any other gardend on the machine."""


async def create_destroy(name: str, client: GardenClient, bare: BareContainerd, n: int) -> Figure:
    async def garden_cycle() -> None:
        await client.destroy(await client.create())

    async def bare_cycle() -> None:
        await bare.destroy(await bare.create())

    await garden_cycle()
    await bare_cycle()
    note = "bare: no network" if "network)" in name else ""
    return Figure(name, "s", await repeat(n, garden_cycle), await repeat(n, bare_cycle), note=note)


async def at_scale(g: Gardend, client: GardenClient, bare: BareContainerd, count: int, n: int) -> list[Figure]:
    idle = rss_bytes(g.pid) / 2**20
    handles: list[str] = []
    for start in range(0, count, 10):
        handles += await asyncio.gather(*(client.create() for _ in range(min(10, count - start))))
    loaded = rss_bytes(g.pid) / 2**20
    bare_ids = []
    for start in range(0, count, 10):
        bare_ids += await asyncio.gather(*(bare.create() for _ in range(min(10, count - start))))
    figures = [
        Figure("gardend RSS, idle", "MiB", [idle]),
        Figure(f"gardend RSS, {count} idle containers", "MiB", [loaded]),
        Figure(
            f"list with {count} containers",
            "s",
            await repeat(n, client.list),
            await repeat(n, bare.client.list_containers),
            note="bare: containerd Containers.List",
        ),
        Figure(f"bulk_info of {count} containers", "s", await repeat(n, lambda: client.bulk_info(*handles))),
        Figure(
            f"bulk_metrics of {count} containers",
            "s",
            await repeat(n, lambda: client.bulk_metrics(*handles)),
            await repeat(n, lambda: bare.client.metrics(*bare_ids)),
            note="bare: containerd Tasks.Metrics for the same number of tasks",
        ),
    ]
    for start in range(0, count, 10):
        await asyncio.gather(*(client.destroy(h) for h in handles[start : start + 10]))
        await asyncio.gather(*(bare.destroy(c) for c in bare_ids[start : start + 10]))
    return figures


async def main(quick: bool) -> None:
    n = 5 if quick else 20
    count = 20 if quick else 200
    figures: list[Figure] = []
    servers = [
        ("create + destroy (no network)", ("--disable-networking",)),
        ("create + destroy (network)", ("--network-pool", BENCH_POOL, "--deny-network", "0.0.0.0/0")),
    ]
    for name, flags in servers:
        async with running_gardend(*flags) as g:
            client = GardenClient(g.url)
            await client.destroy(await client.create())  # builds the id-shifted rootfs the bare side reuses
            bare = BareContainerd(g.containerd_socket, g.depot / "depot")
            await bare.prepare(Path(ROOTFS))
            try:
                figures.append(await create_destroy(name, client, bare, n))
                if "no network" in name:
                    stdout_size = (256 if quick else 1024) << 20
                    figures += await processes.figures(client, bare, n, stdout_size, 50)
                    figures += await at_scale(g, client, bare, count, n)
                    scratch = Path(tempfile.mkdtemp(prefix="gdb-scratch-", dir="/tmp"))
                    try:
                        figures += await streaming.figures(
                            client, scratch, 64 if quick else 256, 1000 if quick else 4000, 3 if quick else 5
                        )
                    finally:
                        shutil.rmtree(scratch, ignore_errors=True)
            finally:
                await bare.close()
                await client.close()
    print(report(figures, machine_facts()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and containers")
    asyncio.run(main(parser.parse_args().quick))

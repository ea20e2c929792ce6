"""Processes: run ``true`` to its exit status, the full create-run-destroy cycle, stdout
throughput and concurrent bursts, each beside its bare-containerd equivalent.

The bare side execs through the same ContainerdClient and the same OCI process spec
(exec, start, wait, delete); ``ctr task exec`` is a second reference where ``ctr`` exists.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.bare import NAMESPACE, BareContainerd
from benchmarks.harness import Figure, percentile, repeat
from gardend.client import GardenClient

TRUE = {"path": "true", "user": "root"}
_exec_ids = itertools.count()


async def garden_run(client: GardenClient, handle: str, spec: dict[str, Any] = TRUE) -> None:
    process = await client.run(handle, spec)
    if (status := await process.wait()) != 0:
        raise RuntimeError(f"{spec['path']} exited {status}")


async def ctr_exec(bare: BareContainerd, cid: str, *args: str) -> None:
    """``ctr task exec`` with its output thrown away: a separate process, so a reference only."""
    ctr = shutil.which("ctr")
    assert ctr is not None
    exec_id = f"ctr{next(_exec_ids)}"
    command = [ctr, "-a", bare.socket, "-n", NAMESPACE, "task", "exec", "--exec-id", exec_id, cid, *args]
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}")


async def run_true(client: GardenClient, bare: BareContainerd, n: int) -> list[Figure]:
    handle, cid = await client.create(), await bare.create()
    try:
        await garden_run(client, handle)
        await bare.exec(cid, "true")
        figures = [
            Figure(
                "run true to its exit status",
                "s",
                await repeat(n, lambda: garden_run(client, handle)),
                await repeat(n, lambda: bare.exec(cid, "true")),
                note="bare: containerd exec + start + wait + delete",
            )
        ]
        if shutil.which("ctr"):
            figures.append(
                Figure(
                    "run true (reference: ctr task exec)",
                    "s",
                    figures[0].gardend,
                    await repeat(n, lambda: ctr_exec(bare, cid, "true")),
                    note="bare: a ctr process per run, so it includes ctr's own start",
                )
            )
        return figures
    finally:
        await client.destroy(handle)
        await bare.destroy(cid)


async def full_cycle(client: GardenClient, bare: BareContainerd, n: int) -> Figure:
    async def garden_cycle() -> None:
        handle = await client.create()
        await garden_run(client, handle)
        await client.destroy(handle)

    async def bare_cycle() -> None:
        cid = await bare.create()
        await bare.exec(cid, "true")
        await bare.destroy(cid)

    await garden_cycle()
    await bare_cycle()
    return Figure(
        "create + run true + destroy",
        "s",
        await repeat(n, garden_cycle),
        await repeat(n, bare_cycle),
        note="bare: create + exec + destroy (ctr run --rm needs an image, so has no equivalent here)",
    )


async def stdout_throughput(client: GardenClient, bare: BareContainerd, size: int, n: int) -> list[Figure]:
    """MB/s of ``head -c size /dev/zero`` read to the end: by a Garden client, and from a FIFO."""
    args = ("head", "-c", str(size), "/dev/zero")
    megabytes = size / 1e6
    handle, cid = await client.create(), await bare.create()

    async def garden() -> None:
        received = 0

        def count(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)

        process = await client.run(handle, {"path": args[0], "args": list(args[1:]), "user": "root"}, stdout=count)
        if await process.wait() != 0 or received != size:
            raise RuntimeError(f"gardend delivered {received} of {size} bytes")

    async def fifo() -> None:
        status, received = await bare.exec_draining(cid, *args)
        if status != 0 or received != size:
            raise RuntimeError(f"bare exec delivered {received} of {size} bytes")

    async def rates(fn: Callable[[], Awaitable[None]]) -> list[float]:
        return [megabytes / t for t in await repeat(n, fn)]

    label = f"stdout of {size >> 20} MiB"
    try:
        figures = [
            Figure(
                label,
                "MB/s",
                await rates(garden),
                await rates(fifo),
                higher_is_better=True,
                note="bare: exec with stdout on a FIFO drained by the benchmark",
            )
        ]
        if shutil.which("ctr"):
            figures.append(
                Figure(
                    f"{label} (reference: ctr task exec)",
                    "MB/s",
                    figures[0].gardend,
                    await rates(lambda: ctr_exec(bare, cid, *args)),
                    higher_is_better=True,
                    note="bare: ctr task exec writing to /dev/null",
                )
            )
        return figures
    finally:
        await client.destroy(handle)
        await bare.destroy(cid)


async def attempt(fn: Callable[[], Awaitable[Any]]) -> float | None:
    """The seconds ``fn`` took, or None if it failed."""
    start = time.perf_counter()
    try:
        await fn()
    except Exception:
        return None
    return time.perf_counter() - start


async def burst(fns: list[Callable[[], Awaitable[Any]]]) -> tuple[list[float], int]:
    """Latencies of all ``fns`` started together, and how many failed."""
    results = await asyncio.gather(*(attempt(fn) for fn in fns))
    latencies = [r for r in results if r is not None]
    return latencies, len(results) - len(latencies)


def tails(gardend: list[float], bare: list[float]) -> str:
    def p(values: list[float], q: float) -> str:
        return f"{percentile(values, q):.3g}" if values else "-"

    return f"p50/p99 gardend {p(gardend, 50)}/{p(gardend, 99)} s, bare {p(bare, 50)}/{p(bare, 99)} s"


async def concurrent(client: GardenClient, bare: BareContainerd, count: int) -> list[Figure]:
    """``count`` creates at once, then one run of ``true`` in each, all at once."""
    handles: list[str] = []
    cids: list[str] = []

    async def garden_create() -> None:
        handles.append(await client.create())

    async def bare_create() -> None:
        cids.append(await bare.create())

    try:
        g_create, g_create_errors = await burst([garden_create] * count)
        b_create, b_create_errors = await burst([bare_create] * count)
        g_run, g_run_errors = await burst([functools.partial(garden_run, client, h) for h in handles])
        b_run, b_run_errors = await burst([functools.partial(bare.exec, c, "true") for c in cids])
    finally:
        await asyncio.gather(*(client.destroy(h) for h in handles), return_exceptions=True)
        await asyncio.gather(*(bare.destroy(c) for c in cids), return_exceptions=True)
    return [
        Figure(
            f"{count} concurrent creates, latency each",
            "s",
            g_create,
            b_create,
            note=tails(g_create, b_create),
            errors={"gardend": g_create_errors, "bare": b_create_errors},
        ),
        Figure(
            f"{count} concurrent runs of true, latency each",
            "s",
            g_run,
            b_run,
            note=tails(g_run, b_run),
            errors={"gardend": g_run_errors, "bare": b_run_errors},
        ),
    ]


async def figures(
    client: GardenClient, bare: BareContainerd, n: int, stdout_size: int, burst_size: int
) -> list[Figure]:
    results = await run_true(client, bare, n)
    results.append(await full_cycle(client, bare, n))
    results += await stdout_throughput(client, bare, stdout_size, 3)
    results += await concurrent(client, bare, burst_size)
    return results

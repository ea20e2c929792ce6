"""A Garden load generator: ``python -m benchmarks.load [--url URL] [--clients N] [--seconds M]``.

Each of N clients repeats a cycle (create, run ``true``, stream in a small tar, destroy)
for M seconds, then the throughput in cycles per second, latency percentiles per step and
every error are printed. Without ``--url`` it starts its own gardend (as benchmarks.run
does). Bounded: at most ``--max-cycles`` cycles in all and a hard stop at M seconds plus a
grace period; only loopback servers are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import json
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field

import yarl

from benchmarks.harness import percentile, running_gardend
from benchmarks.processes import garden_run
from gardend.client import GardenClient

STEPS = ("create", "run", "stream_in", "destroy", "cycle")
GRACE = 60.0
"""How long cycles still running at the deadline may take before they are cancelled."""


def small_tar(size: int = 64 << 10) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("load/payload")
        info.size = size
        tar.addfile(info, io.BytesIO(b"\0" * size))
    return buffer.getvalue()


@dataclass
class Tally:
    """What the clients did: latencies per step, and every error by step and message."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    budget: int = 0

    def take(self) -> bool:
        """One more cycle, if the budget allows it."""
        if self.budget <= 0:
            return False
        self.budget -= 1
        return True


async def step(tally: Tally, name: str, work: Awaitable[object]) -> bool:
    """Awaits one step, recording its latency or its error; True if it succeeded."""
    start = time.perf_counter()
    try:
        await work
    except Exception as e:
        tally.errors[(name, f"{type(e).__name__}: {e}")] += 1
        return False
    tally.latencies[name].append(time.perf_counter() - start)
    return True


async def cycle(client: GardenClient, tally: Tally, archive: bytes) -> None:
    start = time.perf_counter()
    handle = ""

    async def create() -> None:
        nonlocal handle
        handle = await client.create()

    if not await step(tally, "create", create()):
        return
    ok = await step(tally, "run", garden_run(client, handle))
    ok = await step(tally, "stream_in", client.stream_in(handle, "/tmp", archive)) and ok
    ok = await step(tally, "destroy", client.destroy(handle)) and ok
    if ok:
        tally.latencies["cycle"].append(time.perf_counter() - start)


async def worker(url: str, tally: Tally, deadline: float, archive: bytes) -> None:
    client = GardenClient(url)
    try:
        while time.monotonic() < deadline and tally.take():
            await cycle(client, tally, archive)
    finally:
        await client.close()


async def generate(url: str, clients: int, seconds: float, max_cycles: int) -> dict[str, object]:
    tally = Tally(budget=max_cycles)
    archive = small_tar()
    start = time.monotonic()
    deadline = start + seconds
    workers = [asyncio.create_task(worker(url, tally, deadline, archive)) for _ in range(clients)]
    _, late = await asyncio.wait(workers, timeout=seconds + GRACE)
    for task in late:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    elapsed = time.monotonic() - start
    cycles = len(tally.latencies["cycle"])
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "cycles_ok": cycles,
        "cycles_per_second": round(cycles / elapsed, 3),
        "cancelled_clients": len(late),
        "latency_s": {
            name: {
                "n": len(values),
                "p50": round(percentile(values, 50), 4),
                "p90": round(percentile(values, 90), 4),
                "p99": round(percentile(values, 99), 4),
                "max": round(max(values), 4),
            }
            for name in STEPS
            if (values := tally.latencies[name])
        },
        "errors": [{"step": s, "error": e, "count": n} for (s, e), n in tally.errors.most_common()],
    }


def require_loopback(url: str) -> None:
    host = yarl.URL(url).host or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SystemExit(f"refusing {url}: the load generator only talks to loopback servers")


@contextlib.asynccontextmanager
async def server(url: str | None) -> AsyncIterator[str]:
    if url:
        require_loopback(url)
        yield url
        return
    async with running_gardend("--disable-networking") as g:
        yield g.url


async def main(args: argparse.Namespace) -> None:
    async with server(args.url) as url:
        result = await generate(url, args.clients, args.seconds, args.max_cycles)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running gardend on loopback; default: start one")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to start new cycles (default 30)")
    parser.add_argument("--max-cycles", type=int, default=2000, help="cycles in all at most (default 2000)")
    asyncio.run(main(parser.parse_args()))

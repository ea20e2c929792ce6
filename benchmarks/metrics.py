"""Latency of bulk_metrics over many live containers, against a running gardend.

    python -m benchmarks.metrics --url http://127.0.0.1:7777 --containers 200 --rounds 20

Creates the containers (tagged with a property so they can be found), asks for all their
metrics in one bulk_metrics call ``rounds`` times, prints latency percentiles, and destroys
the containers again, even when interrupted.

runc gives every container a session keyring owned by its root user, and the kernel allows
a non-root uid ``kernel.keys.maxkeys`` keys (200 by default): unprivileged containers, whose
root is one shared host uid, stop starting near that count unless the sysctl is raised.
``--privileged`` measures the same code path without that ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from gardend.client import GardenClient

PROPERTY = "gardend.benchmark"


async def _create_all(client: GardenClient, count: int, concurrency: int, run_id: str, privileged: bool) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            return await client.create(
                handle=f"bench-{run_id}-{i}", properties={PROPERTY: run_id}, privileged=privileged
            )

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _destroy_all(client: GardenClient, run_id: str, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(handle: str) -> None:
        async with gate:
            await client.destroy(handle)

    await asyncio.gather(*(one(h) for h in await client.list(**{PROPERTY: run_id})))


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


async def main(url: str, containers: int, rounds: int, concurrency: int, privileged: bool) -> None:
    client = GardenClient(url)
    run_id = uuid.uuid4().hex[:8]
    try:
        started = time.monotonic()
        handles = await _create_all(client, containers, concurrency, run_id, privileged)
        print(f"created {len(handles)} containers in {time.monotonic() - started:.1f}s")
        params = {"handles": ",".join(handles)}
        latencies = []
        for _ in range(rounds):
            started = time.monotonic()
            reply = await client.request("GET", "/containers/bulk_metrics", params=params)
            latencies.append(time.monotonic() - started)
            failed = [h for h, entry in reply.items() if entry["Err"] is not None]
            if len(reply) != len(handles) or failed:
                raise SystemExit(f"bulk_metrics answered {len(reply)} handles, {len(failed)} with errors")
        latencies.sort()
        ms = [f"{x * 1000:.0f}" for x in (latencies[0], statistics.median(latencies), _percentile(latencies, 0.95))]
        print(f"bulk_metrics for {len(handles)} containers, {rounds} rounds: min {ms[0]} ms, "
              f"median {ms[1]} ms, p95 {ms[2]} ms, max {latencies[-1] * 1000:.0f} ms")  # fmt: skip
    finally:
        await _destroy_all(client, run_id, concurrency)
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7777")
    parser.add_argument("--containers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--privileged", action="store_true", help="create privileged containers")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.containers, args.rounds, args.concurrency, args.privileged))

"""Create+destroy latency with and without container networking, and what networking costs.

    python -m benchmarks.network [--cycles 50] [--pool 10.254.248.0/22]

Starts two gardends (own depots and containerds): one with networking on ``--pool``, one
with ``--disable-networking``; times sequential create+destroy cycles on each and prints
median and p90 per mode and their ratio, then checks that the networked server left no
iptables chain or bridge of its pool behind.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from gardend import server
from gardend.client import GardenClient
from gardend.config import Config
from gardend.network.host import pool_tag

ROOTFS = "/var/lib/gardend/rootfs/busybox"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def cycles(config: Config, n: int, privileged: bool) -> list[float]:
    """Seconds per create+destroy, measured through the HTTP API."""
    srv = await server.start(config)
    client = GardenClient(f"http://127.0.0.1:{config.bind_port}")
    try:
        await client.destroy(await client.create())  # warm-up: the rootfs copy for unprivileged containers
        times = []
        for _ in range(n):
            start = time.perf_counter()
            await client.destroy(await client.create(privileged=privileged))
            times.append(time.perf_counter() - start)
        return times
    finally:
        await client.close()
        await srv.close()


def leftovers(pool: ipaddress.IPv4Network) -> list[str]:
    prefix = f"GD-{pool_tag(pool)}-"
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout.splitlines()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()
    return [r for r in rules if prefix in r] + [line.split(":")[1].strip() for line in links if ": gd" in line]


def make_depot() -> Path:
    """Searchable by all, as unprivileged containers need."""
    depot = Path(tempfile.mkdtemp(prefix="gd-bench-", dir="/tmp"))
    depot.chmod(0o755)
    return depot


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--pool", default="10.254.248.0/22")
    p.add_argument("--rootfs", default=ROOTFS)
    p.add_argument(
        "--privileged",
        action="store_true",
        help="privileged containers: the kernel allows an unprivileged container root only 200 keyrings per 5 min",
    )
    args = p.parse_args()
    pool = ipaddress.IPv4Network(args.pool)
    depot = make_depot()
    try:
        results = {}
        for name, disabled in (("networking", False), ("no networking", True)):
            config = Config(
                bind_port=free_port(),
                depot=depot / name.replace(" ", "-"),
                default_rootfs=args.rootfs,
                containerd_namespace="gardend-bench",
                network_pool=str(pool),
                disable_networking=disabled,
                deny_networks=("0.0.0.0/0",),
            )
            results[name] = await cycles(config, args.cycles, args.privileged)
    finally:
        shutil.rmtree(depot, ignore_errors=True)
    kind = "privileged" if args.privileged else "unprivileged"
    print(f"create+destroy of {kind} containers, {args.cycles} sequential cycles")
    print(f"{'mode':<15} {'median ms':>10} {'p90 ms':>10}")
    for name, times in results.items():
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:<15} {statistics.median(times) * 1000:>10.1f} {p90 * 1000:>10.1f}")
    ratio = statistics.median(results["networking"]) / statistics.median(results["no networking"])
    print(f"ratio networking / no networking (median): {ratio:.2f}")
    left = leftovers(pool)
    print("leftovers:", left or "none")


if __name__ == "__main__":
    asyncio.run(main())

"""StreamIn / StreamOut throughput next to plain ``tar`` on the same machine and disk.

    .venv/bin/python -m benchmarks.streaming [--address HOST:PORT] [--size-mb 500]

Without ``--address`` it starts its own gardend (``harness.running_gardend``: a separate
process with a temporary depot; rootfs from GARDEND_BENCH_ROOTFS) and stops it afterwards.
For each workload the same tar file is streamed into a container and extracted by
``tar -xf`` into a local directory, then that tree is streamed out and archived by
``tar -cf -`` into a pipe that this script drains. Each figure is the best of ``--repeat``
runs, after ``sync`` so that earlier writes do not slow the next one down.
The ratio is gardend's MB/s over tar's: 1.0 means as fast as tar on the local disk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.harness import running_gardend
from gardend.client import GardenClient

CHUNK = 1 << 20


@dataclass(frozen=True)
class Workload:
    name: str
    files: int
    file_size: int

    @property
    def total(self) -> int:
        return self.files * self.file_size

    def build(self, parent: Path) -> Path:
        """A directory named after the workload, filled with incompressible data."""
        root = parent / self.name
        block = os.urandom(min(self.file_size, CHUNK))
        for i in range(self.files):
            sub = root / f"d{i // 1000}"
            sub.mkdir(parents=True, exist_ok=True)
            with open(sub / f"f{i}", "wb") as f:
                for offset in range(0, self.file_size, len(block)):
                    f.write(block[: self.file_size - offset])
        return root


@dataclass
class Result:
    workload: str
    operation: str
    megabytes: float
    gardend_mb_s: float
    tar_mb_s: float

    @property
    def ratio(self) -> float:
        return self.gardend_mb_s / self.tar_mb_s if self.tar_mb_s else 0.0


async def best_of(repeat: int, run: Callable[[int], Awaitable[None]]) -> float:
    """The shortest wall time of ``repeat`` runs of ``run(i)``, each after a sync."""
    best = float("inf")
    for i in range(repeat):
        await asyncio.to_thread(os.sync)
        start = time.perf_counter()
        await run(i)
        best = min(best, time.perf_counter() - start)
    return best


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb", buffering=0)
    try:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk
    finally:
        f.close()


async def drain_stream_out(client: GardenClient, handle: str, source: str) -> None:
    async with client.stream_out(handle, source) as body:
        while await body.read(CHUNK):
            pass


async def tar_create(directory: Path, name: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        "tar", "-C", str(directory), "-cf", "-", name, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    while await proc.stdout.read(CHUNK):
        pass
    if await proc.wait() != 0:
        raise RuntimeError("tar -c failed")


async def tar_extract(archive: Path, directory: Path) -> None:
    await asyncio.to_thread(directory.mkdir)
    proc = await asyncio.create_subprocess_exec("tar", "-C", str(directory), "-xf", str(archive))
    if await proc.wait() != 0:
        raise RuntimeError("tar -x failed")


async def measure(client: GardenClient, handle: str, workload: Workload, scratch: Path, repeat: int) -> list[Result]:
    source = await asyncio.to_thread(workload.build, scratch / "source")
    archive = scratch / f"{workload.name}.tar"
    tar = ["tar", "-C", str(source.parent), "-cf", str(archive), workload.name]
    await asyncio.to_thread(subprocess.run, tar, check=True)
    size_mb = (await asyncio.to_thread(archive.stat)).st_size / 1e6

    async def stream_in(i: int) -> None:
        await client.stream_in(handle, f"/tmp/bench-{workload.name}-{i}", file_chunks(archive))

    async def local_extract(i: int) -> None:
        await tar_extract(archive, scratch / f"x-{workload.name}-{i}")

    in_time = await best_of(repeat, stream_in)
    tar_in_time = await best_of(repeat, local_extract)

    async def stream_out(_: int) -> None:
        await drain_stream_out(client, handle, f"/tmp/bench-{workload.name}-0/{workload.name}")

    async def local_create(_: int) -> None:
        await tar_create(scratch / f"x-{workload.name}-0", workload.name)

    out_time = await best_of(repeat, stream_out)
    tar_out_time = await best_of(repeat, local_create)

    for i in range(repeat):
        shutil.rmtree(scratch / f"x-{workload.name}-{i}", ignore_errors=True)
    shutil.rmtree(source.parent, ignore_errors=True)
    archive.unlink()
    return [
        Result(workload.name, "stream in", size_mb, size_mb / in_time, size_mb / tar_in_time),
        Result(workload.name, "stream out", size_mb, size_mb / out_time, size_mb / tar_out_time),
    ]


def report(results: list[Result]) -> str:
    lines = [f"{'workload':<12} {'operation':<11} {'MB':>8} {'gardend MB/s':>13} {'tar MB/s':>9} {'ratio':>6}"]
    for r in results:
        lines.append(
            f"{r.workload:<12} {r.operation:<11} {r.megabytes:>8.1f} {r.gardend_mb_s:>13.1f} "
            f"{r.tar_mb_s:>9.1f} {r.ratio:>6.2f}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> list[Result]:
    workloads = [
        Workload("one-big-file", 1, args.size_mb << 20),
        Workload("small-files", args.small_files, 64 << 10),
    ]
    async with contextlib.AsyncExitStack() as stack:
        url = f"http://{args.address}" if args.address else (await stack.enter_async_context(running_gardend())).url
        client = GardenClient(url)
        stack.push_async_callback(client.close)
        handle = await client.create(handle=f"bench-streaming-{os.getpid()}")
        stack.push_async_callback(client.destroy, handle)
        scratch = Path(tempfile.mkdtemp(prefix="gd-bench-scratch-", dir=args.scratch))
        stack.callback(shutil.rmtree, scratch, True)
        results = []
        for workload in workloads:
            results += await measure(client, handle, workload, scratch, args.repeat)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", help="HOST:PORT of a running gardend (default: start one)")
    parser.add_argument("--size-mb", type=int, default=500, help="size of the one-big-file workload")
    parser.add_argument("--small-files", type=int, default=4000, help="number of 64 KiB files in small-files")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scratch", default="/tmp", help="where tar extracts (use the depot's filesystem)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps([{**asdict(r), "ratio": r.ratio} for r in results], indent=2))
    else:
        print(report(results))


if __name__ == "__main__":
    main()

"""StreamIn / StreamOut throughput next to plain ``tar`` on the same machine and disk.

For each workload the same tar file is streamed into a container and extracted by
``tar -xf`` into a local directory, then that tree is streamed out and archived by
``tar -cf -`` into a pipe that is drained. Every run follows a ``sync`` so that earlier
writes do not slow the next one down. The ratio is gardend's MB/s over tar's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import Figure
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


async def throughputs(repeat: int, megabytes: float, run: Callable[[int], Awaitable[None]]) -> list[float]:
    """MB/s of ``repeat`` runs of ``run(i)``, each after a sync."""
    rates = []
    for i in range(repeat):
        await asyncio.to_thread(os.sync)
        start = time.perf_counter()
        await run(i)
        rates.append(megabytes / (time.perf_counter() - start))
    return rates


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


async def measure(client: GardenClient, handle: str, workload: Workload, scratch: Path, repeat: int) -> list[Figure]:
    source = await asyncio.to_thread(workload.build, scratch / "source")
    archive = scratch / f"{workload.name}.tar"
    tar = ["tar", "-C", str(source.parent), "-cf", str(archive), workload.name]
    await asyncio.to_thread(subprocess.run, tar, check=True)
    size_mb = (await asyncio.to_thread(archive.stat)).st_size / 1e6

    async def stream_in(i: int) -> None:
        await client.stream_in(handle, f"/tmp/bench-{workload.name}-{i}", file_chunks(archive))

    async def local_extract(i: int) -> None:
        await tar_extract(archive, scratch / f"x-{workload.name}-{i}")

    rates_in = await throughputs(repeat, size_mb, stream_in)
    tar_rates_in = await throughputs(repeat, size_mb, local_extract)

    async def stream_out(_: int) -> None:
        await drain_stream_out(client, handle, f"/tmp/bench-{workload.name}-0/{workload.name}")

    async def local_create(_: int) -> None:
        await tar_create(scratch / f"x-{workload.name}-0", workload.name)

    rates_out = await throughputs(repeat, size_mb, stream_out)
    tar_rates_out = await throughputs(repeat, size_mb, local_create)

    for i in range(repeat):
        shutil.rmtree(scratch / f"x-{workload.name}-{i}", ignore_errors=True)
    shutil.rmtree(source.parent, ignore_errors=True)
    archive.unlink()
    label = f"{workload.name}, {size_mb:.0f} MB"
    return [
        Figure(f"stream in ({label})", "MB/s", rates_in, tar_rates_in, higher_is_better=True, note="bare: tar -x"),
        Figure(f"stream out ({label})", "MB/s", rates_out, tar_rates_out, higher_is_better=True, note="bare: tar -c"),
    ]


async def figures(client: GardenClient, scratch: Path, size_mb: int, small_files: int, repeat: int) -> list[Figure]:
    """Stream-in and stream-out of one big file and of a tree of small files."""
    workloads = [Workload("one-big-file", 1, size_mb << 20), Workload("small-files", small_files, 64 << 10)]
    handle = await client.create()
    try:
        results = []
        for workload in workloads:
            results += await measure(client, handle, workload, scratch, repeat)
        return results
    finally:
        await client.destroy(handle)

"""The bare-containerd side: the same container as gardend makes, driven over the same stubs.

It uses gardend's OCI spec builder and rootfs layers so both sides run identical
containers; what it leaves out is exactly the Garden layer (HTTP, records, grace time).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import tempfile
from pathlib import Path

from gardend.backend.pipes import make_fifos, open_output_fds
from gardend.config import Config
from gardend.containerd.client import RUNC_RUNTIME, SPEC_TYPE_URL, Container, ContainerdClient, json_any
from gardend.models import Limits, ProcessSpec
from gardend.rootfs.overlay import Overlay
from gardend.rootfs.source import ShiftedRootfsCache
from gardend.runtime.cgroups import ResourcePolicy
from gardend.runtime.process import process_spec
from gardend.runtime.security import SecurityPolicy
from gardend.runtime.spec import MAXIMUS, IdMapping, container_spec

NAMESPACE = "bench-bare"


class BareContainerd:
    def __init__(self, socket: str, depot: Path) -> None:
        self.socket = socket
        self.client = ContainerdClient(socket, NAMESPACE)
        self.dir = depot / "bare"
        self.depot = depot
        self.lower = Path()
        self.init_binary = next((depot / "bin").glob("*/garden-init"))
        self._ids = itertools.count()
        defaults = Config()
        self.mapping = IdMapping(MAXIMUS, defaults.uid_map_start, defaults.uid_map_length)

    async def prepare(self, rootfs: Path) -> None:
        """Uses gardend's own id-shifted copy of the rootfs, as its containers do."""
        self.lower = await ShiftedRootfsCache(self.depot / "rootfs", self.mapping).get(rootfs)

    async def close(self) -> None:
        await self.client.close()

    async def create(self) -> str:
        cid = f"bare-{next(self._ids)}"
        overlay = Overlay(self.lower, self.dir / cid)
        await overlay.create(MAXIMUS, MAXIMUS, {})
        spec = container_spec(
            handle=cid,
            cgroups_path=f"/{NAMESPACE}/{cid}",
            env=[],
            privileged=False,
            id_mapping=self.mapping,
            init_binary=str(self.init_binary),
            bind_mounts=[],
            limits=Limits(),
            policy=SecurityPolicy(),
            resource_policy=ResourcePolicy(),
        )
        container = Container(id=cid, runtime=Container.Runtime(name=RUNC_RUNTIME), spec=json_any(SPEC_TYPE_URL, spec))
        await self.client.create_container(container)
        await self.client.create_task(cid, overlay.mounts())
        await self.client.start(cid)
        return cid

    async def destroy(self, cid: str) -> None:
        await self.client.kill(cid, signal.SIGKILL, all_processes=True)
        await self.client.wait(cid)
        await self.client.delete_task(cid)
        await self.client.delete_container(cid)
        await asyncio.to_thread(shutil.rmtree, self.dir / cid, True)

    def process(self, *args: str) -> dict[str, object]:
        """The OCI process gardend would exec for ``args`` as root in the container's /."""
        spec = ProcessSpec(path=args[0], args=list(args[1:]))
        return process_spec(
            spec, uid=0, gid=0, groups=(), cwd="/", container_env=[], privileged=False, policy=SecurityPolicy()
        )

    async def exec(self, cid: str, *args: str) -> int:
        """Exec, start, wait and delete: what a Garden run of ``args`` amounts to in containerd."""
        exec_id = f"x{next(self._ids)}"
        await self.client.exec(cid, exec_id, self.process(*args))
        try:
            waiting = asyncio.create_task(self.client.wait(cid, exec_id))
            await self.client.start(cid, exec_id)
            return await waiting
        finally:
            await self.client.delete_process(cid, exec_id)

    async def exec_draining(self, cid: str, *args: str) -> tuple[int, int]:
        """Runs ``args`` with stdout and stderr on FIFOs drained here, as gardend reads its
        processes' output; returns the exit status and the number of bytes on stdout."""
        await asyncio.to_thread(self.dir.mkdir, parents=True, exist_ok=True)
        directory = Path(await asyncio.to_thread(tempfile.mkdtemp, "", "bare-fifo-", str(self.dir)))
        streams = ("stdout", "stderr")
        await asyncio.to_thread(make_fifos, directory, streams)
        counters: list[_Counter] = []
        writers: list[int] = []
        try:
            for name in streams:
                read_fd, write_fd = await asyncio.to_thread(open_output_fds, directory / name)
                writers.append(write_fd)
                counters.append(await _Counter.open(read_fd))
            exec_id = f"x{next(self._ids)}"
            stdout, stderr = (str(directory / name) for name in streams)
            await self.client.exec(cid, exec_id, self.process(*args), stdout=stdout, stderr=stderr)
            try:
                waiting = asyncio.create_task(self.client.wait(cid, exec_id))
                await self.client.start(cid, exec_id)
                while writers:
                    os.close(writers.pop())
                status = await waiting
                await asyncio.gather(*(c.ended.wait() for c in counters))
            finally:
                await self.client.delete_process(cid, exec_id)
            return status, counters[0].count
        finally:
            for fd in writers:
                os.close(fd)
            for counter in counters:
                counter.close()
            await asyncio.to_thread(shutil.rmtree, directory, True)


class _Counter(asyncio.Protocol):
    """Reads a FIFO to its end, keeping only the number of bytes."""

    def __init__(self) -> None:
        self.count = 0
        self.ended = asyncio.Event()
        self._transport: asyncio.BaseTransport | None = None

    @classmethod
    async def open(cls, fd: int) -> _Counter:
        counter = cls()
        loop = asyncio.get_running_loop()
        counter._transport, _ = await loop.connect_read_pipe(lambda: counter, os.fdopen(fd, "rb", buffering=0))
        return counter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self.count += len(data)

    def eof_received(self) -> None:
        self.ended.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended.set()

"""The Garden backend as the HTTP layer sees it: one object per server.

Each method is one Garden operation; it resolves the handle, holds the container's grace
countdown while it runs, and delegates to the part that owns the semantics.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from gardend.backend.attachments import Attachment, OutputStream
from gardend.backend.containers import ContainerBackend
from gardend.backend.files import FileTransfers
from gardend.backend.limits import current_limits
from gardend.backend.metrics import MetricsCollector
from gardend.backend.oom import OOM_EVENT, OomWatcher
from gardend.backend.processes import ProcessBackend
from gardend.backend.store import ContainerRecord
from gardend.errors import GardenError
from gardend.models import (
    Capacity,
    ContainerInfo,
    ContainerSpec,
    Metrics,
    NetIn,
    NetOutRule,
    ProcessSpec,
    WireModel,
    to_wire,
)


class Garden:
    def __init__(self, containers: ContainerBackend) -> None:
        self.containers = containers
        self.files = FileTransfers(containers.client)
        self.metrics_collector = MetricsCollector(containers.client, containers.disks, containers.containers_dir)
        self.oom = OomWatcher(containers.client, self._record_oom)
        self.processes = ProcessBackend(containers)

    async def start(self) -> None:
        await self.containers.start()
        await self.processes.start()
        self.oom.start()

    async def close(self) -> None:
        await self.oom.close()
        await self.processes.close()
        await self.containers.close()

    def _record_oom(self, container_id: str) -> None:
        for record in self.containers.records.values():
            if record.id == container_id:
                record.events.append(OOM_EVENT)

    async def ping(self) -> None:
        await self.containers.ping()

    async def capacity(self) -> Capacity:
        return await self.containers.capacity()

    async def create(self, spec: ContainerSpec) -> str:
        return await self.containers.create(spec)

    def list_handles(self, filters: dict[str, str]) -> list[str]:
        return self.containers.list_handles(filters)

    async def destroy(self, handle: str) -> None:
        await self.containers.destroy(handle)

    async def stop(self, handle: str, kill: bool) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.stop(record, kill)
            await self.processes.settle(record)

    async def info(self, handle: str) -> ContainerInfo:
        async with self.containers.activity(handle) as record:
            return self.containers.info(record, self.processes.live_ids(record))

    async def bulk_info(self, handles: list[str]) -> dict[str, Any]:
        """Per-handle results; an unknown handle is an entry's error, never the call's."""
        entries: dict[str, Any] = {}
        for handle in handles:
            try:
                record = self.containers.get(handle)
                info = self.containers.info(record, self.processes.live_ids(record))
                entries[handle] = {"Info": to_wire(info), "Err": None}
            except GardenError as e:
                entries[handle] = {"Info": to_wire(ContainerInfo()), "Err": e.to_wire()}
        return entries

    async def properties(self, handle: str) -> dict[str, str]:
        async with self.containers.activity(handle) as record:
            return self.containers.properties(record)

    async def property(self, handle: str, key: str) -> str:
        async with self.containers.activity(handle) as record:
            return self.containers.property(record, key)

    async def set_property(self, handle: str, key: str, value: str) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.set_property(record, key, value)

    async def remove_property(self, handle: str, key: str) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.remove_property(record, key)

    async def set_grace_time(self, handle: str, grace_ns: int) -> None:
        await self.containers.set_grace_time(handle, grace_ns)

    async def stream_in(self, handle: str, destination: str, user: str, body: AsyncIterable[bytes]) -> None:
        async with self.containers.activity(handle) as record:
            await self.files.stream_in(record, destination, user, body)

    @contextlib.asynccontextmanager
    async def stream_out(self, handle: str, source: str, user: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """The tar's chunks; the grace countdown holds until the caller leaves the context."""
        async with self.containers.activity(handle) as record, self.files.stream_out(record, source, user) as chunks:
            yield chunks

    async def net_in(self, handle: str, host_port: int, container_port: int) -> NetIn:
        async with self.containers.activity(handle) as record:
            return await self.containers.networks.net_in(record, host_port, container_port)

    async def net_out(self, handle: str, rules: list[NetOutRule]) -> None:
        async with self.containers.activity(handle) as record:
            await self.containers.networks.net_out(record, rules)

    async def limits(self, handle: str, kind: str) -> WireModel:
        async with self.containers.activity(handle) as record:
            return current_limits(record, kind, self.containers.cgroups)

    async def metrics(self, handle: str) -> Metrics:
        async with self.containers.activity(handle) as record:
            result = (await self.metrics_collector.collect([record]))[handle]
        if isinstance(result, GardenError):
            raise result
        return result

    async def bulk_metrics(self, handles: list[str]) -> dict[str, Any]:
        """Per-handle results, as bulk_info: an unknown or unmeasurable handle is an entry's error.
        A pea's process id is a handle too, as in Guardian."""
        entries: dict[str, Any] = {}
        records = []
        for handle in handles:
            pea = self.processes.pea(handle) if handle not in self.containers.records else None
            try:
                records.append(pea.record() if pea is not None else self.containers.get(handle))
            except GardenError as e:
                entries[handle] = {"Metrics": to_wire(Metrics()), "Err": e.to_wire()}
        try:
            results = await self.metrics_collector.collect(records)
        except GardenError as e:
            results = {record.handle: e for record in records}
        for handle, result in results.items():
            if isinstance(result, GardenError):
                entries[handle] = {"Metrics": to_wire(Metrics()), "Err": result.to_wire()}
            else:
                entries[handle] = {"Metrics": to_wire(result), "Err": None}
        return entries

    def run(self, handle: str, spec: ProcessSpec) -> contextlib.AbstractAsyncContextManager[Attachment]:
        """Starts a process; the grace countdown holds while the caller keeps the attachment."""
        return self._attachment(handle, lambda record: self.processes.run(record, spec))

    def attach(self, handle: str, process_id: str) -> contextlib.AbstractAsyncContextManager[Attachment]:
        return self._attachment(handle, lambda record: self.processes.attach(record, process_id))

    @contextlib.asynccontextmanager
    async def _attachment(
        self, handle: str, open_attachment: Callable[[ContainerRecord], Awaitable[Attachment]]
    ) -> AsyncIterator[Attachment]:
        async with self.containers.activity(handle) as record:
            attachment = await open_attachment(record)
            try:
                yield attachment
            finally:
                attachment.finish()

    def output(self, stream_id: str, name: str) -> OutputStream | None:
        """An attachment's stdout or stderr; streams are found by stream id alone, as Garden does."""
        return self.processes.output(stream_id, name)

"""The container lifecycle: create, list, info, properties, grace time, stop, destroy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from gardend.backend import bindmounts
from gardend.backend.disk import LayerDisks
from gardend.backend.grace import GraceReaper
from gardend.backend.limits import apply_bandwidth
from gardend.backend.network import ContainerNetworks
from gardend.backend.store import (
    STATE_CREATED,
    STATE_CREATING,
    STATE_STOPPED,
    ContainerRecord,
    ContainerStore,
    StoredSpec,
    containerd_id,
)
from gardend.config import Config
from gardend.containerd import errors as cerr
from gardend.containerd.client import ContainerdClient, TaskStatus
from gardend.errors import (
    BadRequestError,
    ConflictError,
    ContainerNotFoundError,
    GardenError,
    NotFoundError,
    ServiceUnavailableError,
)
from gardend.models import Capacity, ContainerInfo, ContainerSpec
from gardend.rootfs.disklimit import DiskImages
from gardend.rootfs.overlay import Overlay
from gardend.rootfs.source import ShiftedRootfsCache, resolve_uri
from gardend.runtime import cgroups
from gardend.runtime.security import SecurityPolicy
from gardend.runtime.spec import MAXIMUS, IdMapping, container_spec

log = logging.getLogger("gardend.backend")
MAX_HANDLE_BYTES = 512
DEFAULT_MAX_CONTAINERS = 1024
STOP_GRACE_SECONDS = 10.0
TEARDOWN_WAIT_SECONDS = 10.0
INIT_EXEC_TIMEOUT = 10.0
INIT_NAME = "garden-init"

DestroyHook = Callable[[ContainerRecord], Awaitable[None]]
PidsHook = Callable[[ContainerRecord], Awaitable[list[int]]]


def validate_handle(handle: str) -> None:
    if len(handle.encode()) > MAX_HANDLE_BYTES:
        raise BadRequestError(f"handle is longer than {MAX_HANDLE_BYTES} bytes")
    if "/" in handle or handle in (".", "..") or any(ord(c) < 0x20 or c == "\x7f" for c in handle):
        raise BadRequestError(f"handle {handle!r} contains '/', control characters or is '.' or '..'")


def _validate_spec(spec: ContainerSpec) -> None:
    for entry in spec.env or []:
        if "=" not in entry or entry.startswith("="):
            raise BadRequestError(f"invalid environment variable {entry!r}: must be KEY=VALUE")


async def _until_exec(pid: int, name: str) -> None:
    """Waits until ``pid`` runs ``name``: runc's start returns before its init execs it, and
    a client may look at PID 1 as soon as create has returned."""

    def comm() -> str:
        try:
            with open(f"/proc/{pid}/comm") as f:
                return f.read().strip()
        except FileNotFoundError:
            raise GardenError(f"container init (pid {pid}) exited while starting") from None

    loop = asyncio.get_running_loop()
    deadline = loop.time() + INIT_EXEC_TIMEOUT
    while await asyncio.to_thread(comm) != name:
        if loop.time() > deadline:
            raise GardenError(f"container init (pid {pid}) did not start {name}")
        await asyncio.sleep(0.002)


class ContainerBackend:
    def __init__(self, config: Config, client: ContainerdClient, init_binary: Path) -> None:
        self.config = config
        self.client = client
        self.init_binary = init_binary
        self.store = ContainerStore(client)
        self.containers_dir = config.depot / "containers"
        self.id_mapping = IdMapping(MAXIMUS, config.uid_map_start, config.uid_map_length)
        self.shifted = ShiftedRootfsCache(config.depot / "rootfs", self.id_mapping)
        self.policy = SecurityPolicy(config.no_new_privileges, config.device_cgroup_rules)
        self.disks = LayerDisks(DiskImages(config.depot / "disks", self.containers_dir))
        self.cgroups = cgroups.CgroupHost()
        self.grace = GraceReaper(self._reap)
        self.networks = ContainerNetworks(config, self.store)
        self.records: dict[str, ContainerRecord] = {}
        self._creating: set[str] = set()
        self._destroying: set[str] = set()
        self.on_destroy: list[DestroyHook] = []
        """Called after a container's teardown (by Destroy or the reaper), e.g. to end process streams."""
        self.before_teardown: list[DestroyHook] = []
        """Called before Destroy tears a container down, e.g. to remove its peas."""
        self.other_pids: list[PidsHook] = []
        """Processes of a container outside its task's cgroup (peas with limits of their own), for Stop."""

    # Start and stop

    async def start(self) -> None:
        """Loads every container from containerd and repairs what a crash left behind."""
        self.cgroups = await asyncio.to_thread(cgroups.detect)
        records = await self.store.load()
        await self.networks.start(
            [r for r in records if r.state != STATE_CREATING], [r for r in records if r.state == STATE_CREATING]
        )
        for record in records:
            if record.state == STATE_CREATING:
                log.info("removing half-created container", extra={"handle": record.handle})
                await self._teardown(record)
                continue
            try:
                await self._ensure_task(record)
                pid = (await self.client.get_task(record.id)).pid
                await self.networks.repair(record, pid)
                await apply_bandwidth(record, pid)
            except (cerr.ContainerdError, GardenError):
                log.exception("container could not be restarted", extra={"handle": record.handle})
            self.records[record.handle] = record
            self.grace.track(record.handle, record.grace_time_ns)
        await self.disks.images.reconcile({r.id for r in self.records.values()})
        await self._remove_orphan_dirs()

    async def close(self) -> None:
        await self.grace.close()
        await self.networks.close()

    async def _ensure_task(self, record: ContainerRecord) -> None:
        try:
            task = await self.client.get_task(record.id)
            if task.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                return
            await self.client.delete_task(record.id)
        except cerr.NotFound:
            pass
        log.info("restarting container task", extra={"handle": record.handle})
        await self.disks.images.restore(record.id)
        await bindmounts.check_container_sources(record.spec.bind_mounts, self._overlay(record).upper)
        await self.client.create_task(record.id, self._overlay(record).mounts(), io_owner=self._io_owner(record))
        await self.client.start(record.id)

    async def _remove_orphan_dirs(self) -> None:
        known = {r.id for r in self.records.values()}
        entries = await asyncio.to_thread(lambda: list(self.containers_dir.glob("*")))
        for path in entries:
            if path.name not in known:
                log.info("removing orphaned container directory", extra={"path": str(path)})
                await asyncio.to_thread(shutil.rmtree, path, True)

    # Lookups

    def get(self, handle: str) -> ContainerRecord:
        record = self.records.get(handle)
        if record is None:
            raise ContainerNotFoundError(handle)
        return record

    def destroying(self, handle: str) -> bool:
        return handle in self._destroying

    @contextlib.asynccontextmanager
    async def activity(self, handle: str) -> AsyncIterator[ContainerRecord]:
        """A request about ``handle``: it must exist, and its grace countdown holds meanwhile."""
        record = self.get(handle)
        async with self.grace.paused(handle):
            yield record

    def _io_owner(self, record: ContainerRecord) -> tuple[int, int]:
        """Process stdio pipes belong to the container's root, so runc can give them to the
        process's user (then /dev/stdin and friends work for any user)."""
        return (0, 0) if record.spec.privileged else (MAXIMUS, MAXIMUS)

    def _overlay(self, record: ContainerRecord) -> Overlay:
        return Overlay(Path(record.spec.lower), self.containers_dir / record.id)

    def properties(self, record: ContainerRecord) -> dict[str, str]:
        """Properties as clients see them, with Guardian's internal ones."""
        return {
            **record.properties,
            **self.networks.properties(record),
            "garden.grace-time": str(record.grace_time_ns),
            "garden.state": STATE_CREATED,
        }

    # Server-wide

    async def ping(self) -> None:
        try:
            await self.client.version(timeout=2.0)
        except cerr.ContainerdError as e:
            raise ServiceUnavailableError(f"containerd is not answering: {e}") from None

    async def capacity(self) -> Capacity:
        def measure() -> tuple[int, int]:
            with open("/proc/meminfo") as f:
                mem_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
            st = os.statvfs(self.config.depot)
            return mem_kib * 1024, st.f_blocks * st.f_frsize

        memory, disk = await asyncio.to_thread(measure)
        limits = [n for n in (self.config.max_containers, self.networks.capacity) if n]
        return Capacity(
            memory_in_bytes=memory,
            disk_in_bytes=disk,
            schedulable_disk_in_bytes=disk,
            max_containers=min(limits) if limits else DEFAULT_MAX_CONTAINERS,
        )

    def list_handles(self, filters: dict[str, str]) -> list[str]:
        filters = dict(filters)
        if filters.get("garden.state") == "all":
            del filters["garden.state"]
        handles = []
        for handle, record in self.records.items():
            props = self.properties(record)
            if all(props.get(k) == v for k, v in filters.items()):
                handles.append(handle)
        return handles

    # Create

    async def create(self, spec: ContainerSpec) -> str:
        handle = spec.handle or str(uuid.uuid4())
        validate_handle(handle)
        _validate_spec(spec)
        if handle in self.records or handle in self._creating:
            raise ConflictError(f"Handle '{handle}' already in use")
        limit = self.config.max_containers
        if limit and len(self.records) + len(self._creating) >= limit:
            raise ConflictError(f"max containers reached: {limit}")
        if spec.privileged and self.config.disable_privileged_containers:
            raise BadRequestError("privileged container creation is disabled")
        source = resolve_uri(spec.image.uri or spec.rootfs, self.config.default_rootfs)
        self._creating.add(handle)
        try:
            record = await self._create(handle, spec, source)
        finally:
            self._creating.discard(handle)
        self.records[handle] = record
        self.grace.track(handle, record.grace_time_ns)
        log.info("created container", extra={"handle": handle, "id": record.id})
        return handle

    async def _create(self, handle: str, spec: ContainerSpec, source: Path) -> ContainerRecord:
        lower = source if spec.privileged else await self.shifted.get(source)
        # Resolved in the lower layer runc will see, not in a source that may have changed since.
        spec = spec.model_copy(update={"bind_mounts": await bindmounts.prepare(spec.bind_mounts or [], lower)})
        quota = await self.disks.quota(spec.limits.disk_limits, lower)
        record = ContainerRecord(
            handle=handle,
            id=containerd_id(handle),
            spec=StoredSpec(
                env=spec.env or [],
                privileged=spec.privileged,
                limits=spec.limits,
                bind_mounts=spec.bind_mounts or [],
                rootfs=str(source),
                lower=str(lower),
                network=spec.network,
                netin=spec.netin or [],
                netout_rules=spec.netout_rules or [],
                created_at_ns=time.time_ns(),
            ),
            properties=dict(spec.properties or {}),
            grace_time_ns=spec.grace_time or self.config.default_grace_time_ns,
        )
        overlay = self._overlay(record)
        await self.networks.allocate(record)
        root_id = 0 if spec.privileged else MAXIMUS
        oci = container_spec(
            handle=handle,
            cgroups_path=f"/{self.config.containerd_namespace}/{record.id}",
            env=record.spec.env,
            privileged=spec.privileged,
            id_mapping=None if spec.privileged else self.id_mapping,
            init_binary=str(self.init_binary),
            bind_mounts=record.spec.bind_mounts,
            limits=spec.limits,
            resource_policy=cgroups.ResourcePolicy(self.cgroups.swap_limit, self.config.cpu_quota_per_share),
            policy=self.policy,
        )
        try:
            await self.store.create(record, oci)
        except BaseException as e:
            self.networks.release(record)
            if isinstance(e, cerr.AlreadyExists):
                raise ConflictError(f"Handle '{handle}' already in use") from None
            raise
        try:
            if quota is not None:
                await self.disks.images.create(record.id, quota)
            await overlay.create(root_id, root_id, await self.networks.seeds(record))
            pid = await self.client.create_task(record.id, overlay.mounts(), io_owner=self._io_owner(record))
            await self.networks.attach(record, pid)
            await apply_bandwidth(record, pid)
            await self.client.start(record.id)
            await _until_exec(pid, INIT_NAME)
            record.state = STATE_CREATED
            await self.store.save_labels(record)
        except BaseException as e:
            await asyncio.shield(self._teardown(record))
            if isinstance(e, cerr.ContainerdError):
                raise GardenError(f"creating container {handle}: {e}") from None
            raise
        return record

    # Destroy

    async def destroy(self, handle: str) -> None:
        record = self.get(handle)
        if handle in self._destroying:
            raise ConflictError("container already being destroyed")
        self._destroying.add(handle)
        try:
            for hook in self.before_teardown:
                await hook(record)
            await self._teardown(record)
            self.records.pop(handle, None)
            self.grace.forget(handle)
            for hook in self.on_destroy:
                await hook(record)
        finally:
            self._destroying.discard(handle)
        log.info("destroyed container", extra={"handle": handle})

    async def _reap(self, handle: str) -> None:
        with contextlib.suppress(ContainerNotFoundError, ConflictError):
            await self.destroy(handle)

    async def _teardown(self, record: ContainerRecord) -> None:
        """Removes every trace of a container; safe to repeat and when parts are gone."""
        with contextlib.suppress(cerr.NotFound, cerr.FailedPrecondition):
            await self.client.kill(record.id, signal.SIGKILL, all_processes=True)
        with contextlib.suppress(cerr.NotFound, TimeoutError):
            await asyncio.wait_for(self.client.wait(record.id), TEARDOWN_WAIT_SECONDS)
        with contextlib.suppress(cerr.NotFound):
            await self.client.delete_task(record.id)
        await self.networks.detach(record)
        with contextlib.suppress(cerr.NotFound):
            await self.client.delete_container(record.id)
        await self.disks.images.remove(record.id)
        await self._overlay(record).remove()

    # Info and properties

    def info(self, record: ContainerRecord, process_ids: list[str]) -> ContainerInfo:
        addresses = self.networks.addresses(record)
        return ContainerInfo(
            state="stopped" if record.state == STATE_STOPPED else "active",
            events=list(record.events),
            container_path=str(self.containers_dir / record.id),
            process_ids=process_ids,
            properties=self.properties(record),
            mapped_ports=self.networks.mapped_ports(record),
            host_ip=addresses.host_ip,
            container_ip=addresses.container_ip,
            external_ip=addresses.external_ip,
        )

    def property(self, record: ContainerRecord, key: str) -> str:
        props = self.properties(record)
        if key not in props:
            raise NotFoundError(f"property does not exist: {key}")
        return props[key]

    async def set_property(self, record: ContainerRecord, key: str, value: str) -> None:
        record.properties[key] = value
        await self.store.save_properties(record)

    async def remove_property(self, record: ContainerRecord, key: str) -> None:
        if record.properties.pop(key, None) is not None:
            await self.store.save_properties(record)

    async def set_grace_time(self, handle: str, grace_ns: int) -> None:
        record = self.get(handle)
        record.grace_time_ns = grace_ns
        await self.store.save_labels(record)
        self.grace.track(handle, grace_ns)

    # Stop

    async def stop(self, record: ContainerRecord, kill: bool) -> None:
        """Signals every process but PID 1, and SIGKILLs what is left after 10 s.

        garden-init keeps running so that the stopped container can still stream files.
        """
        init_pid = (await self.client.get_task(record.id)).pid
        await self._signal_all(record, init_pid, signal.SIGKILL if kill else signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_SECONDS
        while await self._others(record, init_pid):
            if loop.time() >= deadline + STOP_GRACE_SECONDS:
                raise GardenError(f"processes in container {record.handle} did not exit after SIGKILL")
            if loop.time() >= deadline:
                await self._signal_all(record, init_pid, signal.SIGKILL)
            await asyncio.sleep(0.05)
        record.state = STATE_STOPPED
        await self.store.save_labels(record)

    async def _others(self, record: ContainerRecord, init_pid: int) -> list[int]:
        pids = set(await self.client.list_pids(record.id))
        for hook in self.other_pids:
            pids.update(await hook(record))
        return sorted(pids - {init_pid})

    async def _signal_all(self, record: ContainerRecord, init_pid: int, sig: int) -> None:
        for pid in await self._others(record, init_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

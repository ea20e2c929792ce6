"""Peas: processes with their own image, each in its own containerd container beside a sandbox.

A pea's process is a Process whose task is the pea container's own task (exec id ""), so
run, attach, stdio, signals and exit work as for any process. Its rootfs is an overlay
under the sandbox's depot directory; when the process exits, or the sandbox goes, the
task, the container and the overlay are removed. Pea containers carry a label naming
their sandbox, so none outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gardend.backend import bindmounts, users
from gardend.backend.containers import ContainerBackend
from gardend.backend.process import Process
from gardend.backend.process_depot import ProcessDepot
from gardend.backend.store import ContainerRecord, StoredSpec, containerd_id
from gardend.containerd import errors as cerr
from gardend.containerd.client import RUNC_RUNTIME, SPEC_TYPE_URL, Container, ContainerdClient, json_any
from gardend.errors import GardenError
from gardend.models import Limits, ProcessSpec
from gardend.rootfs import inroot
from gardend.rootfs.overlay import Overlay
from gardend.rootfs.source import resolve_uri
from gardend.runtime import cgroups
from gardend.runtime.pea import SHARED_FILES, pea_spec
from gardend.runtime.process import process_spec, working_dir
from gardend.runtime.spec import MAXIMUS

log = logging.getLogger("gardend.peas")

PEA_LABEL = "gardend.pea-of"
"""On a pea's containerd container: the containerd id of its sandbox."""
REMOVE_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Stdio:
    """Where the task's stdio goes: FIFOs in the process depot."""

    stdin: str
    stdout: str
    stderr: str
    terminal: bool


Launch = Callable[[Stdio], Awaitable[None]]


class PeaProcess(Process):
    """A process that is the init of its own pea container."""

    def __init__(
        self, client: ContainerdClient, depot: ProcessDepot, sandbox_id: str, process_id: str, tty: bool, peas: Peas
    ) -> None:
        super().__init__(client, depot, sandbox_id, process_id, tty)
        self.task_id, self.task_exec = containerd_id(f"{sandbox_id}-pea-{process_id}"), ""
        self.peas = peas
        self.lower = Path("/")
        self.created_at_ns = 0

    async def release(self) -> None:
        await self.peas.remove(self.container_id, self.task_id)

    def stored_pea(self) -> dict[str, Any]:
        return {"lower": str(self.lower), "created_at_ns": self.created_at_ns}

    def restore_pea(self, stored: dict[str, Any]) -> None:
        self.lower, self.created_at_ns = Path(str(stored["lower"])), int(stored["created_at_ns"])

    def record(self) -> ContainerRecord:
        """The pea as a container record, to measure it like a container."""
        spec = StoredSpec(lower=str(self.lower), created_at_ns=self.created_at_ns)
        return ContainerRecord(handle=self.id, id=self.task_id, spec=spec)


class Peas:
    def __init__(self, containers: ContainerBackend) -> None:
        self.containers = containers
        self.client = containers.client
        self.config = containers.config
        self._removals: dict[str, asyncio.Task[None]] = {}

    def _sandbox_upper(self, record: ContainerRecord) -> Path:
        return Overlay(Path(record.spec.lower), self.containers.containers_dir / record.id).upper

    def _base(self, sandbox_id: str, pea_id: str) -> Path:
        return self.containers.containers_dir / sandbox_id / "peas" / pea_id

    async def prepare(self, record: ContainerRecord, spec: ProcessSpec, process: PeaProcess) -> Launch:
        """Checks the request and builds the pea; the returned launch creates and starts it."""
        source = resolve_uri(spec.image.uri, self.config.default_rootfs)
        privileged = record.spec.privileged
        lower = source if privileged else await self.containers.shifted.get(source)
        process.lower, process.created_at_ns = lower, time.time_ns()
        user = await users.resolve(str(lower), spec.user)
        try:
            sandbox_pid = (await self.client.get_task(record.id)).pid
        except cerr.ContainerdError as e:
            raise GardenError(f"container {record.handle} has no running task: {e}") from None
        namespace = self.config.containerd_namespace
        override = spec.limits
        limits = Limits()
        if override is not None:
            limits = Limits(
                cpu_limits=override.cpu_limits,
                memory_limits=override.memory_limits,
                pid_limits=override.pid_limits,
            )
        oci = pea_spec(
            process=process_spec(
                spec,
                uid=user.uid,
                gid=user.gid,
                groups=user.additional_gids,
                cwd=working_dir(spec.dir, "/"),
                container_env=record.spec.env,
                privileged=privileged,
                policy=self.containers.policy,
            ),
            sandbox_pid=sandbox_pid,
            shared_files=await asyncio.to_thread(_shared_files, self._sandbox_upper(record)),
            # Without limits of its own, the pea sits inside the sandbox's cgroup and shares its limits.
            cgroups_path=f"/{namespace}/{process.task_id}"
            if override is not None
            else f"/{namespace}/{record.id}/{process.task_id}",
            limits=limits,
            privileged=privileged,
            id_mapping=None if privileged else self.containers.id_mapping,
            init_binary=str(self.containers.init_binary),
            bind_mounts=await bindmounts.prepare(spec.bind_mounts or [], lower),
            resource_policy=cgroups.ResourcePolicy(self.containers.cgroups.swap_limit, self.config.cpu_quota_per_share),
            policy=self.containers.policy,
        )
        overlay = Overlay(lower, self._base(record.id, process.task_id))
        root_id = 0 if privileged else MAXIMUS

        async def launch(stdio: Stdio) -> None:
            try:
                await overlay.create(root_id, root_id, {})
                await self.client.create_container(
                    Container(
                        id=process.task_id,
                        labels={PEA_LABEL: record.id},
                        runtime=Container.Runtime(name=RUNC_RUNTIME),
                        spec=json_any(SPEC_TYPE_URL, oci),
                    )
                )
                await self.client.create_task(
                    process.task_id,
                    overlay.mounts(),
                    stdin=stdio.stdin,
                    stdout=stdio.stdout,
                    stderr=stdio.stderr,
                    io_owner=(root_id, root_id),
                    terminal=stdio.terminal,
                )
                await self.client.start(process.task_id)
            except BaseException:
                await asyncio.shield(self.remove(record.id, process.task_id))
                raise

        return launch

    async def remove(self, sandbox_id: str, pea_id: str) -> None:
        """Removes a pea's task, container and overlay; safe to repeat and when parts are gone.

        The pea's exit and its sandbox's destroy may both remove it: they share one removal."""
        removal = self._removals.get(pea_id)
        if removal is None:
            removal = asyncio.create_task(self._remove(sandbox_id, pea_id), name=f"removing pea {pea_id}")
            self._removals[pea_id] = removal
            removal.add_done_callback(lambda _: self._removals.pop(pea_id, None))
        await asyncio.shield(removal)

    async def _remove(self, sandbox_id: str, pea_id: str) -> None:
        await _quietly(pea_id, self.client.kill(pea_id, signal.SIGKILL, all_processes=True))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_quietly(pea_id, self.client.wait(pea_id)), REMOVE_WAIT_SECONDS)
        await _quietly(pea_id, self.client.delete_task(pea_id))
        await _quietly(pea_id, self.client.delete_container(pea_id))
        await asyncio.to_thread(shutil.rmtree, self._base(sandbox_id, pea_id), True)

    async def pids(self, record: ContainerRecord) -> list[int]:
        """The host pids of every process in the sandbox's peas."""
        pids = []
        for container in await self.client.list_containers(_selector(record.id)):
            with contextlib.suppress(cerr.ContainerdError):
                pids += await self.client.list_pids(container.id)
        return pids

    async def remove_all(self, sandbox_id: str | None = None, keep: frozenset[str] = frozenset()) -> None:
        """Removes every pea of a sandbox, or of all sandboxes, but those in ``keep``."""
        for container in await self.client.list_containers(_selector(sandbox_id)):
            if container.id in keep:
                continue
            log.info("removing pea", extra={"pea": container.id, "sandbox": container.labels[PEA_LABEL]})
            await self.remove(container.labels[PEA_LABEL], container.id)


def _selector(sandbox_id: str | None) -> str:
    """containerd's filter for the peas of a sandbox, or of all sandboxes."""
    return f'labels."{PEA_LABEL}"' + ("" if sandbox_id is None else f'=="{sandbox_id}"')


async def _quietly(pea_id: str, step: Awaitable[object]) -> None:
    """One removal step: what is already gone is fine, other failures are logged."""
    try:
        await step
    except (cerr.NotFound, cerr.FailedPrecondition):
        pass
    except cerr.ContainerdError as e:
        log.warning("removing pea", extra={"pea": pea_id, "error": str(e)})


def _shared_files(sandbox_upper: Path) -> dict[str, str]:
    """Host paths of the sandbox's /etc/hosts and /etc/resolv.conf, free of symlinks in it.

    They come from the sandbox's writable layer, where gardend wrote them: a bind mount
    cannot take them from the sandbox's mount namespace."""
    shared = {}
    for path in SHARED_FILES:
        with contextlib.suppress(OSError):
            shared[path] = str(sandbox_upper) + inroot.resolve(str(sandbox_upper), path)
    return shared

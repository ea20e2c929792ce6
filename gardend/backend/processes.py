"""Garden processes: a table per container, with Run, Attach, Stop and Destroy semantics.

Run reserves the process id at once (a duplicate is refused, and an Attach racing the start
waits for it), prepares the user and working directory, and execs the process (process.py);
every Run and Attach gets an attachment (attachments.py). A restarted gardend finds its
processes again in the depot (process_depot.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import uuid

from gardend.backend import users
from gardend.backend.attachments import Attachment, OutputStream
from gardend.backend.containers import ContainerBackend
from gardend.backend.peas import Launch, PeaProcess, Peas, Stdio
from gardend.backend.process import Process
from gardend.backend.process_depot import STREAMS, ProcessDepot
from gardend.backend.store import ContainerRecord
from gardend.containerd import errors as cerr
from gardend.errors import (
    BadRequestError,
    ConflictError,
    ContainerNotFoundError,
    ExecutableNotFoundError,
    GardenError,
    ProcessNotFoundError,
    ServiceUnavailableError,
)
from gardend.models import ProcessSpec
from gardend.rootfs import inroot
from gardend.runtime.process import process_spec, working_dir
from gardend.runtime.spec import MAXIMUS

log = logging.getLogger("gardend.processes")

SETTLE_TIMEOUT = 5.0
"""How long Stop and Destroy wait for exits to be reported after the processes are dead."""


def _start_error(e: cerr.ContainerdError) -> GardenError:
    text = str(e)
    if "executable file not found" in text or ("exec:" in text and "no such file or directory" in text):
        return ExecutableNotFoundError(text)
    if isinstance(e, cerr.Unavailable):
        return ServiceUnavailableError(f"running process: {text}")
    return GardenError(f"running process: {text}")


class ProcessBackend:
    def __init__(self, containers: ContainerBackend) -> None:
        self.containers = containers
        self.client = containers.client
        self.depot = ProcessDepot(containers.config.depot / "processes")
        self.tables: dict[str, dict[str, Process]] = {}
        self.attachments: dict[str, Attachment] = {}
        self.peas = Peas(containers)
        self._stream_ids = itertools.count(1)
        containers.on_destroy.append(self._container_destroyed)
        containers.before_teardown.append(self._remove_peas)
        containers.other_pids.append(self.peas.pids)

    # Start and stop

    async def start(self) -> None:
        """Finds the processes a previous gardend left, peas included, and goes on reading
        their output; pea containers that no process owns any more are removed."""
        for record in list(self.containers.records.values()):
            table = self.tables.setdefault(record.id, {})
            for stored in await self.depot.load(record.id):
                process = self._new_process(record, stored.id, stored.tty, pea=stored.pea is not None)
                if isinstance(process, PeaProcess) and stored.pea is not None:
                    process.restore_pea(stored.pea)
                try:
                    await process.resume(stored)
                    table[stored.id] = process
                except OSError:
                    log.exception("process could not be restored", extra={"process_id": stored.id})
        owned = frozenset(p.task_id for t in self.tables.values() for p in t.values() if isinstance(p, PeaProcess))
        await self.peas.remove_all(keep=owned)
        await self.depot.remove_other_containers(set(self.tables))
        await self.depot.release()

    async def close(self) -> None:
        """Detaches from every process (they keep running) and keeps their undelivered output."""
        for attachment in self.attachments.values():
            attachment.cancel()
        processes = [p for table in self.tables.values() for p in table.values()]
        await self.depot.hold([fd for p in processes for fd in p.holdable_fds()])
        for process in processes:
            await process.detach()
        self.tables.clear()
        self.attachments.clear()

    # Run, attach, output

    async def run(self, record: ContainerRecord, spec: ProcessSpec) -> Attachment:
        if spec.bind_mounts and not spec.image.uri:
            raise BadRequestError("bind mounts are only supported for processes with their own image")
        if self.containers.destroying(record.handle):
            raise ConflictError("container is being destroyed", handle=record.handle)
        table = self.tables.setdefault(record.id, {})
        process_id = spec.id or str(uuid.uuid4())
        if process_id in table:
            raise ConflictError(f"process ID '{process_id}' already in use", process_id=process_id)
        process = self._new_process(record, process_id, spec.tty is not None, pea=bool(spec.image.uri))
        table[process_id] = process
        try:
            await self._start(record, spec, process)
            if self.tables.get(record.id) is not table:
                await process.abandon("container was destroyed")
                raise ContainerNotFoundError(record.handle)
        except BaseException:
            if table.get(process_id) is process:
                del table[process_id]
            process.start_failed()
            raise
        log.info("started process", extra={"process_id": process_id, "handle": record.handle})
        return self._attach(process)

    async def _start(self, record: ContainerRecord, spec: ProcessSpec, process: Process) -> None:
        if isinstance(process, PeaProcess):
            launch = await self.peas.prepare(record, spec, process)
        else:
            launch = await self._prepare_exec(record, spec, process)
        try:
            await self._launch(record, process, launch)
        except BaseException:
            await self.depot.remove_process(process.dir)
            raise

    async def _prepare_exec(self, record: ContainerRecord, spec: ProcessSpec, process: Process) -> Launch:
        try:
            init_pid = (await self.client.get_task(record.id)).pid
        except cerr.ContainerdError as e:
            raise GardenError(f"container {record.handle} has no running task: {e}") from None
        root = f"/proc/{init_pid}/root"
        user = await users.resolve(root, spec.user)
        cwd = working_dir(spec.dir, user.home)
        try:
            await asyncio.to_thread(
                inroot.make_dirs, root, cwd, self._host_id(record, user.uid), self._host_id(record, user.gid)
            )
        except OSError as e:
            raise GardenError(f"creating working directory {cwd}: {e}") from None
        oci = process_spec(
            spec,
            uid=user.uid,
            gid=user.gid,
            groups=user.additional_gids,
            cwd=cwd,
            container_env=record.spec.env,
            privileged=record.spec.privileged,
            policy=self.containers.policy,
        )

        async def launch(stdio: Stdio) -> None:
            await self.client.exec(
                record.id,
                process.exec_id,
                oci,
                stdin=stdio.stdin,
                stdout=stdio.stdout,
                stderr=stdio.stderr,
                terminal=stdio.terminal,
            )
            try:
                await self.client.start(record.id, process.exec_id)
            except BaseException:
                with contextlib.suppress(cerr.ContainerdError):
                    await self.client.delete_process(record.id, process.exec_id)
                raise

        return launch

    def _new_process(self, record: ContainerRecord, process_id: str, tty: bool, pea: bool) -> Process:
        if pea:
            return PeaProcess(self.client, self.depot, record.id, process_id, tty, self.peas)
        return Process(self.client, self.depot, record.id, process_id, tty)

    async def _launch(self, record: ContainerRecord, process: Process, launch: Launch) -> None:
        """Makes the process's FIFOs, reads its output and starts it with ``launch``."""
        await self.depot.create(record.id, process.exec_id, process.id, process.tty, process.stored_pea())
        writers = await process.open_outputs()
        try:
            await launch(
                Stdio(
                    stdin=str(process.dir / "stdin"),
                    stdout=str(process.dir / "stdout"),
                    stderr="" if process.tty else str(process.dir / "stderr"),
                    terminal=process.tty,
                )
            )
        except cerr.ContainerdError as e:
            raise _start_error(e) from None
        finally:
            for fd in writers:
                os.close(fd)
        await process.stdin.open(process.dir / "stdin")
        process.begin()

    def _host_id(self, record: ContainerRecord, container_id: int) -> int:
        """The host id of a container id: root is MAXIMUS in unprivileged containers."""
        return MAXIMUS if container_id == 0 and not record.spec.privileged else container_id

    async def attach(self, record: ContainerRecord, process_id: str) -> Attachment:
        process = self.tables.get(record.id, {}).get(process_id)
        if process is None:
            raise ProcessNotFoundError(process_id)
        await process.started.wait()
        if process.failed:
            raise ProcessNotFoundError(process_id)
        return self._attach(process)

    def _attach(self, process: Process) -> Attachment:
        attachment = Attachment(process, str(next(self._stream_ids)), self._attachment_done, self._exit_reported)
        self.attachments[attachment.stream_id] = attachment
        return attachment

    def _attachment_done(self, attachment: Attachment) -> None:
        self.attachments.pop(attachment.stream_id, None)

    async def _exit_reported(self, process: Process) -> None:
        """With --cleanup-process-dirs-on-wait, a process is forgotten once a client has its exit."""
        table = self.tables.get(process.container_id, {})
        if self.containers.config.cleanup_process_dirs_on_wait and table.get(process.id) is process:
            del table[process.id]
            await self.depot.remove_process(process.dir)

    def output(self, stream_id: str, name: str) -> OutputStream | None:
        attachment = self.attachments.get(stream_id)
        return attachment.output(name) if attachment is not None and name in STREAMS else None

    # What other operations need

    def live_ids(self, record: ContainerRecord) -> list[str]:
        return [p.id for p in self.tables.get(record.id, {}).values() if p.live]

    async def settle(self, record: ContainerRecord) -> None:
        """Waits (a bounded time) until every process that has died has its exit recorded."""
        await _wait_all([p.exited for p in self.tables.get(record.id, {}).values() if p.live], SETTLE_TIMEOUT)

    def pea(self, process_id: str) -> PeaProcess | None:
        """The live pea whose process has ``process_id``, in any container."""
        for table in self.tables.values():
            process = table.get(process_id)
            if isinstance(process, PeaProcess) and process.live:
                return process
        return None

    async def _remove_peas(self, record: ContainerRecord) -> None:
        """Kills a sandbox's peas, so that their processes exit (137) before the sandbox goes."""
        peas = [p for p in self.tables.get(record.id, {}).values() if isinstance(p, PeaProcess) and p.live]
        for pea in peas:
            await pea.signal(1)
        await _wait_all([p.done for p in peas], SETTLE_TIMEOUT)
        await self.peas.remove_all(record.id)

    async def _container_destroyed(self, record: ContainerRecord) -> None:
        """Finishes every process stream of a destroyed container, then forgets its processes."""
        processes = list(self.tables.pop(record.id, {}).values())
        await _wait_all([p.done for p in processes], SETTLE_TIMEOUT)
        for process in processes:
            await process.abandon("container was destroyed")
        await self.depot.remove_container(record.id)


async def _wait_all(events: list[asyncio.Event], timeout: float) -> None:
    """Waits until all ``events`` are set, or ``timeout`` seconds have passed."""
    waits = [asyncio.create_task(event.wait()) for event in events if not event.is_set()]
    if waits:
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for task in pending:
            task.cancel()

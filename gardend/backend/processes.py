"""Garden processes: a table per container, run as containerd execs, with attachments.

A process is a containerd exec whose stdio are FIFOs in the depot (process_depot, pipes).
Each output stream has exactly one reader, feeding an OutputLog; Run and every Attach
create an *attachment* with its own cursors into those logs and a stream id by which its
stdout/stderr connections find it. The exit is reported once the process has exited and
its output has been read to EOF; it stays in the table until the container is destroyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import uuid
from collections.abc import Callable

from gardend.backend import users
from gardend.backend.containers import MAXIMUS, ContainerBackend
from gardend.backend.output import CursorState, OutputLog
from gardend.backend.pipes import OutputPipe, StdinPipe, open_output_fds
from gardend.backend.process_depot import STREAMS, ExitResult, ProcessDepot, StoredProcess, StreamState
from gardend.backend.store import ContainerRecord, containerd_id
from gardend.containerd import errors as cerr
from gardend.containerd.client import ContainerdClient
from gardend.errors import (
    BadRequestError,
    ConflictError,
    ContainerNotFoundError,
    ExecutableNotFoundError,
    GardenError,
    ProcessNotFoundError,
    ServiceUnavailableError,
)
from gardend.models import ProcessSpec, WindowSize
from gardend.rootfs import inroot
from gardend.runtime.process import process_spec, working_dir

log = logging.getLogger("gardend.processes")

ARRIVAL_WINDOW = 5.0
"""Seconds an attachment waits for its stdout/stderr connections before deciding that its
client does not read them. The Go client opens them right after the first message."""
DRAIN_IDLE = 5.0
"""After exit, how long output may stay silent without EOF (a background child holding the
pipe) before the exit is reported anyway."""
SETTLE_TIMEOUT = 5.0
"""How long Stop and Destroy wait for exits to be reported after the processes are dead."""
WAIT_RETRY = 1.0
SIGNALS = {0: signal.SIGTERM, 1: signal.SIGKILL}


def _start_error(e: cerr.ContainerdError) -> GardenError:
    text = str(e)
    if "executable file not found" in text or ("exec:" in text and "no such file or directory" in text):
        return ExecutableNotFoundError(text)
    if isinstance(e, cerr.Unavailable):
        return ServiceUnavailableError(f"running process: {text}")
    return GardenError(f"running process: {text}")


class Process:
    """One process of a container: its exec, its output logs, its stdin and its exit."""

    def __init__(
        self, client: ContainerdClient, depot: ProcessDepot, container_id: str, process_id: str, tty: bool
    ) -> None:
        self.client = client
        self.depot = depot
        self.container_id = container_id
        self.id = process_id
        self.exec_id = containerd_id(process_id)
        self.tty = tty
        self.dir = depot.dir_for(container_id, self.exec_id)
        self.logs = {"stdout": OutputLog(), "stderr": OutputLog(eof=tty)}
        self.stdin = StdinPipe()
        self.stdin_closed = False
        self.pipes: list[OutputPipe] = []
        self.started = asyncio.Event()
        self.failed = False
        self.exited = asyncio.Event()
        self.done = asyncio.Event()
        self.result: ExitResult | None = None
        self._exit: ExitResult | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        return not self.failed and not self.exited.is_set()

    async def open_outputs(self) -> list[int]:
        """Starts reading every output FIFO not yet at EOF. Returns a write end of each, to
        close once the shim has its own: until then the reader must not see EOF, and after
        it the reader must see EOF when the last writer goes, which the kernel only reports
        to a reader that has seen a writer come since it opened."""

        def open_all() -> list[tuple[str, int, int]]:
            opened = []
            for name, out in self.logs.items():
                if not out.eof:
                    try:
                        opened.append((name, *open_output_fds(self.dir / name)))
                    except FileNotFoundError:
                        out.close()
            return opened

        writers = []
        for name, fd, writer in await asyncio.to_thread(open_all):
            self.pipes.append(await OutputPipe.open(fd, self.logs[name]))
            writers.append(writer)
        return writers

    def begin(self) -> None:
        self.started.set()
        self._task = asyncio.create_task(self._supervise(), name=f"process {self.id}")

    def start_failed(self) -> None:
        self.failed = True
        for pipe in self.pipes:
            pipe.detach()
        self.stdin.abort()
        self.started.set()

    async def _supervise(self) -> None:
        try:
            result = self._exit = await self._wait_exit()
            self.exited.set()
            self.stdin.abort()
            await self._drain()
        except Exception as e:
            log.exception("supervising a process failed", extra={"process_id": self.id})
            result = ExitResult(error=f"supervising the process failed: {e}")
            self.exited.set()
        self.result = result
        self.done.set()
        log.info("process exited", extra={"process_id": self.id, "container": self.container_id, **result.to_json()})
        await self.depot.save_exit(self.dir, result)
        with contextlib.suppress(cerr.NotFound):
            try:
                await self.client.delete_process(self.container_id, self.exec_id)
            except cerr.ContainerdError as e:
                log.warning("could not delete exec", extra={"process_id": self.id, "error": str(e)})

    async def _wait_exit(self) -> ExitResult:
        while True:
            try:
                return ExitResult(status=await self.client.wait(self.container_id, self.exec_id))
            except cerr.NotFound:
                return ExitResult(error="process is gone: its container was destroyed or restarted")
            except cerr.Unavailable:
                await asyncio.sleep(WAIT_RETRY)
            except cerr.ContainerdError as e:
                return ExitResult(error=f"waiting for the process: {e}")

    async def _drain(self) -> None:
        """Waits until all output is read, unless it stays silent without EOF (a background
        child still holds the pipe) for DRAIN_IDLE."""
        while True:
            before = sum(out.end for out in self.logs.values())
            try:
                await asyncio.wait_for(asyncio.gather(*(p.ended.wait() for p in self.pipes)), DRAIN_IDLE)
                return
            except TimeoutError:
                idle = sum(out.end for out in self.logs.values()) == before
                if idle and not any(out.throttled for out in self.logs.values()):
                    log.warning("output still open after exit", extra={"process_id": self.id})
                    return

    # What attachments ask for

    async def write_stdin(self, data: bytes) -> None:
        if not self.stdin_closed:
            await self.stdin.write(data)

    async def close_stdin(self) -> None:
        """Ends stdin on the client's EOF. A TTY's stdin stays open until exit: closing it
        would hang up the terminal."""
        if self.tty or self.stdin_closed:
            return
        self.stdin_closed = True
        await self.stdin.close()
        if not self.exited.is_set():
            with contextlib.suppress(cerr.NotFound, cerr.FailedPrecondition):
                await self.client.close_stdin(self.container_id, self.exec_id)

    async def signal(self, number: int) -> None:
        sig = SIGNALS.get(number)
        if sig is None:
            log.warning("ignoring unknown signal", extra={"process_id": self.id, "signal": number})
            return
        if self.exited.is_set():
            return
        try:
            await self.client.kill(self.container_id, sig, exec_id=self.exec_id)
        except (cerr.NotFound, cerr.FailedPrecondition):
            pass
        except cerr.ContainerdError as e:
            log.warning("could not signal process", extra={"process_id": self.id, "error": str(e)})

    async def resize(self, size: WindowSize) -> None:
        if not self.tty or self.exited.is_set():
            return
        try:
            await self.client.resize_pty(self.container_id, self.exec_id, size.columns, size.rows)
        except cerr.ContainerdError as e:
            log.warning("could not resize terminal", extra={"process_id": self.id, "error": str(e)})

    # Restart and teardown

    @classmethod
    async def restore(
        cls, client: ContainerdClient, depot: ProcessDepot, container_id: str, stored: StoredProcess
    ) -> Process:
        """The process as a previous gardend left it, reading its FIFOs again if it had not finished."""
        process = cls(client, depot, container_id, stored.id, stored.tty)
        process.dir = stored.dir
        for name, state in stored.streams.items():
            out = process.logs[name]
            out.wanted = state.wanted
            out.restore(state.pending)
            if state.eof or stored.exit is not None:
                out.close()
        if stored.exit is not None:
            process.result = stored.exit
            process.exited.set()
            process.done.set()
            process.started.set()
            return process
        for writer in await process.open_outputs():
            os.close(writer)
        process.stdin_closed = stored.stdin_closed
        if not stored.stdin_closed:
            await process.stdin.open(process.dir / "stdin")
        process.begin()
        return process

    def holdable_fds(self) -> list[int]:
        return [pipe.fd for pipe in self.pipes if not pipe.ended.is_set()]

    async def detach(self) -> None:
        """Leaves the process running for the next gardend, keeping what it has not delivered."""
        await self._stop_supervising()
        for pipe in self.pipes:
            pipe.detach()
        self.stdin.abort()
        streams = {
            name: StreamState(eof=out.eof, wanted=out.wanted, pending=out.undelivered())
            for name, out in self.logs.items()
        }
        await self.depot.save_output(self.dir, self.stdin_closed, streams)

    async def abandon(self, reason: str) -> None:
        """Ends everything about the process; attachments get ``reason`` if no exit came."""
        await self._stop_supervising()
        if not self.done.is_set():
            self.result = self._exit or ExitResult(error=reason)
            self.exited.set()
            self.done.set()
        for pipe in self.pipes:
            pipe.detach()
        for out in self.logs.values():
            out.close()
        self.stdin.abort()

    async def _stop_supervising(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class OutputStream:
    """One attachment's stdout or stderr as its output connection reads it."""

    def __init__(self, attachment: Attachment, name: str) -> None:
        self.attachment = attachment
        self._log = attachment.process.logs[name]
        self._cursor = attachment.cursors[name]
        self._log.connect(self._cursor)

    async def read(self) -> bytes:
        """The next bytes to send; ``b""`` when the stream is done."""
        return await self._log.read(self._cursor)

    def advance(self, count: int) -> None:
        self._log.advance(self._cursor, count)

    def close(self) -> None:
        self._log.release(self._cursor)
        self.attachment.check_done()


class Attachment:
    """One Run or Attach: cursors into the process's output and the client's handle on it."""

    def __init__(self, process: Process, stream_id: str, on_done: Callable[[Attachment], None]) -> None:
        self.process = process
        self.stream_id = stream_id
        self.cursors = {name: out.cursor() for name, out in process.logs.items()}
        self.finished = False
        self._on_done = on_done
        self._window = asyncio.get_running_loop().call_later(ARRIVAL_WINDOW, self._close_window)

    @property
    def process_id(self) -> str:
        return self.process.id

    async def wait(self) -> ExitResult:
        await self.process.done.wait()
        assert self.process.result is not None
        return self.process.result

    async def write_stdin(self, data: bytes) -> None:
        await self.process.write_stdin(data)

    async def close_stdin(self) -> None:
        await self.process.close_stdin()

    async def signal(self, number: int) -> None:
        await self.process.signal(number)

    async def resize(self, size: WindowSize) -> None:
        await self.process.resize(size)

    def output(self, name: str) -> OutputStream | None:
        """The output stream for a connection that just arrived, unless one came already."""
        if self.cursors[name].state != CursorState.PENDING:
            return None
        return OutputStream(self, name)

    def finish(self) -> None:
        """The control connection has ended: output connections send what they have and close."""
        if not self.finished:
            self.finished = True
            for name, cursor in self.cursors.items():
                self.process.logs[name].finish(cursor)
            self.check_done()

    def cancel(self) -> None:
        self._window.cancel()

    def _close_window(self) -> None:
        for name, cursor in self.cursors.items():
            self.process.logs[name].decline(cursor)
        self.check_done()

    def check_done(self) -> None:
        if self.finished and all(c.state == CursorState.CLOSED for c in self.cursors.values()):
            self._window.cancel()
            self._on_done(self)


class ProcessBackend:
    def __init__(self, containers: ContainerBackend) -> None:
        self.containers = containers
        self.client = containers.client
        self.depot = ProcessDepot(containers.config.depot / "processes")
        self.tables: dict[str, dict[str, Process]] = {}
        self.attachments: dict[str, Attachment] = {}
        self._stream_ids = itertools.count(1)
        containers.on_destroy.append(self._container_destroyed)

    # Start and stop

    async def start(self) -> None:
        """Finds the processes a previous gardend left and goes on reading their output."""
        for record in list(self.containers.records.values()):
            table = self.tables.setdefault(record.id, {})
            for stored in await self.depot.load(record.id):
                try:
                    table[stored.id] = await Process.restore(self.client, self.depot, record.id, stored)
                except OSError:
                    log.exception("process could not be restored", extra={"process_id": stored.id})
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
        if spec.image.uri:
            raise BadRequestError("processes with their own image are not supported")
        if spec.bind_mounts:
            raise BadRequestError("bind mounts are only supported for processes with their own image")
        if self.containers.destroying(record.handle):
            raise ConflictError("container is being destroyed", handle=record.handle)
        table = self.tables.setdefault(record.id, {})
        process_id = spec.id or str(uuid.uuid4())
        if process_id in table:
            raise ConflictError(f"process ID '{process_id}' already in use", process_id=process_id)
        process = Process(self.client, self.depot, record.id, process_id, spec.tty is not None)
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
        )
        try:
            await self._exec(record, process, oci)
        except BaseException:
            await self.depot.remove_process(process.dir)
            raise

    async def _exec(self, record: ContainerRecord, process: Process, oci: dict[str, object]) -> None:
        await self.depot.create(record.id, process.exec_id, process.id, process.tty)
        writers = await process.open_outputs()
        try:
            await self.client.exec(
                record.id,
                process.exec_id,
                oci,
                stdin=str(process.dir / "stdin"),
                stdout=str(process.dir / "stdout"),
                stderr="" if process.tty else str(process.dir / "stderr"),
                terminal=process.tty,
            )
            try:
                await self.client.start(record.id, process.exec_id)
            except BaseException:
                with contextlib.suppress(cerr.ContainerdError):
                    await self.client.delete_process(record.id, process.exec_id)
                raise
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
        attachment = Attachment(process, str(next(self._stream_ids)), self._attachment_done)
        self.attachments[attachment.stream_id] = attachment
        return attachment

    def _attachment_done(self, attachment: Attachment) -> None:
        self.attachments.pop(attachment.stream_id, None)

    def output(self, stream_id: str, name: str) -> OutputStream | None:
        attachment = self.attachments.get(stream_id)
        return attachment.output(name) if attachment is not None and name in STREAMS else None

    # What other operations need

    def live_ids(self, record: ContainerRecord) -> list[str]:
        return [p.id for p in self.tables.get(record.id, {}).values() if p.live]

    async def settle(self, record: ContainerRecord) -> None:
        """Waits (a bounded time) until every process that has died has its exit recorded."""
        waits = [asyncio.create_task(p.exited.wait()) for p in self.tables.get(record.id, {}).values() if p.live]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=SETTLE_TIMEOUT)
            for task in pending:
                task.cancel()

    async def _container_destroyed(self, record: ContainerRecord) -> None:
        """Finishes every process stream of a destroyed container, then forgets its processes."""
        processes = list(self.tables.pop(record.id, {}).values())
        waits = [asyncio.create_task(p.done.wait()) for p in processes if not p.done.is_set()]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=SETTLE_TIMEOUT)
            for task in pending:
                task.cancel()
        for process in processes:
            await process.abandon("container was destroyed")
        await self.depot.remove_container(record.id)

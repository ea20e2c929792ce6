"""One Garden process: a containerd exec whose stdio are FIFOs in the depot.

Each output stream has exactly one reader (pipes.OutputPipe) feeding an OutputLog. The exit
is reported once the process has exited and its output has been read to EOF; then the exec
is deleted and the exit status kept in the depot, so it outlives gardend and the exec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from gardend.backend.output import OutputLog
from gardend.backend.pipes import OutputPipe, StdinPipe, open_output_fds
from gardend.backend.process_depot import ExitResult, ProcessDepot, StoredProcess, StreamState
from gardend.backend.store import containerd_id
from gardend.containerd import errors as cerr
from gardend.containerd.client import ContainerdClient
from gardend.models import WindowSize

log = logging.getLogger("gardend.processes")

DRAIN_IDLE = 5.0
"""After exit, how long output may stay silent without EOF (a background child holding the
pipe) before the exit is reported anyway."""
WAIT_RETRY = 1.0
SIGNALS = {0: signal.SIGTERM, 1: signal.SIGKILL}


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
        self.task_id, self.task_exec = container_id, self.exec_id
        """The containerd container and exec id that run the process: a pea's own task has exec id ""."""
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
        self._tasks: list[asyncio.Task[None]] = []

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
        self._tasks.append(asyncio.create_task(self._supervise(), name=f"process {self.id}"))

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
            result = self._exit or ExitResult(error=f"supervising the process failed: {e}")
            self.exited.set()
        self.result = result
        self.done.set()
        log.info("process exited", extra={"process_id": self.id, "container": self.container_id, **result.to_json()})
        await self.depot.save_exit(self.dir, result)
        await self.release()

    async def release(self) -> None:
        """Removes what ran the process once its exit is kept: here the exec."""
        try:
            await self.client.delete_process(self.task_id, self.task_exec)
        except cerr.NotFound:
            pass
        except cerr.ContainerdError as e:
            log.warning("could not delete exec", extra={"process_id": self.id, "error": str(e)})

    async def _wait_exit(self) -> ExitResult:
        while True:
            try:
                return ExitResult(status=await self.client.wait(self.task_id, self.task_exec))
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
        self._tasks.append(asyncio.create_task(self._end_stdin(), name=f"stdin of {self.id}"))

    async def _end_stdin(self) -> None:
        """Sends what the client wrote, then ends the process's stdin; in the background, so
        that a signal after the EOF gets through even if the process never reads stdin."""
        await self.stdin.close()
        if not self.exited.is_set():
            await self._close_io()

    async def _close_io(self) -> None:
        """Closes the shim's own write end of stdin, the last one once gardend's is closed."""
        try:
            await self.client.close_stdin(self.task_id, self.task_exec)
        except (cerr.NotFound, cerr.FailedPrecondition):
            pass
        except cerr.ContainerdError as e:
            log.warning("could not close stdin", extra={"process_id": self.id, "error": str(e)})

    async def signal(self, number: int) -> None:
        sig = SIGNALS.get(number)
        if sig is None:
            log.warning("ignoring unknown signal", extra={"process_id": self.id, "signal": number})
            return
        if self.exited.is_set():
            return
        try:
            await self.client.kill(self.task_id, sig, exec_id=self.task_exec)
        except (cerr.NotFound, cerr.FailedPrecondition):
            pass
        except cerr.ContainerdError as e:
            log.warning("could not signal process", extra={"process_id": self.id, "error": str(e)})

    async def resize(self, size: WindowSize) -> None:
        if not self.tty or self.exited.is_set():
            return
        try:
            await self.client.resize_pty(self.task_id, self.task_exec, size.columns, size.rows)
        except cerr.ContainerdError as e:
            log.warning("could not resize terminal", extra={"process_id": self.id, "error": str(e)})

    # Restart and teardown

    def stored_pea(self) -> dict[str, Any] | None:
        """What the depot must remember to rebuild this process as a pea; None for an exec."""
        return None

    async def resume(self, stored: StoredProcess) -> None:
        """Takes up the process as a previous gardend left it, reading its FIFOs again if it
        had not finished."""
        process = self
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
            return
        for writer in await process.open_outputs():
            os.close(writer)
        process.stdin_closed = stored.stdin_closed
        if stored.stdin_closed:
            await process._close_io()
        else:
            await process.stdin.open(process.dir / "stdin")
        process.begin()

    def holdable_fds(self) -> list[int]:
        return [pipe.fd for pipe in self.pipes if not pipe.ended.is_set()]

    async def detach(self) -> None:
        """Leaves the process running for the next gardend, keeping what it has not delivered."""
        await self._stop_tasks()
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
        await self._stop_tasks()
        if not self.done.is_set():
            self.result = self._exit or ExitResult(error=reason)
            self.exited.set()
            self.done.set()
        for pipe in self.pipes:
            pipe.detach()
        for out in self.logs.values():
            out.close()
        self.stdin.abort()

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

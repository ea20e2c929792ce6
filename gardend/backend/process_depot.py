"""Processes on disk, so that a restarted gardend finds them again.

Each process has a directory ``<depot>/processes/<container id>/<exec id>/`` holding its
stdio FIFOs, ``meta.json`` (who it is), ``exit.json`` once its exit is known, and, written
at shutdown, ``output.json`` plus ``<stream>.pending`` with output nobody has received yet.
containerd keeps the exec itself until gardend has drained it.

Output still inside a FIFO survives a restart only while some process holds the FIFO
open: the shim does while the process runs, and at shutdown gardend hands its own read
ends to a small *holder* process, which the next gardend stops once it has reopened them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gardend.backend.pipes import make_fifos

log = logging.getLogger("gardend.processes")

FIFOS = ("stdin", "stdout", "stderr")
STREAMS = ("stdout", "stderr")
_HOLDER_MARK = "gardend-fifo-holder"
_HOLDER = "import signal; signal.pause()"


@dataclass(frozen=True)
class ExitResult:
    """How a process ended: an exit status, or why none could be had."""

    status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"exit_status": self.status} if self.error is None else {"error": self.error}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExitResult:
        if "error" in data:
            return cls(error=str(data["error"]))
        return cls(status=int(data["exit_status"]))


@dataclass
class StreamState:
    """One output stream as a shutdown left it."""

    eof: bool = False
    wanted: bool = True
    pending: bytes = b""


@dataclass
class StoredProcess:
    dir: Path
    id: str
    exec_id: str
    tty: bool
    pea: dict[str, Any] | None = None
    """For a process with its own image: what is needed to measure and remove its container."""
    exit: ExitResult | None = None
    stdin_closed: bool = False
    streams: dict[str, StreamState] = field(default_factory=dict)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.rename(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _load_one(directory: Path) -> StoredProcess | None:
    meta = _read_json(directory / "meta.json")
    if not isinstance(meta, dict):
        return None
    exit_data = _read_json(directory / "exit.json")
    output = _read_json(directory / "output.json") or {}
    stored = StoredProcess(
        dir=directory,
        id=str(meta["id"]),
        exec_id=str(meta["exec_id"]),
        tty=bool(meta.get("tty")),
        pea=meta["pea"] if isinstance(meta.get("pea"), dict) else None,
        exit=ExitResult.from_json(exit_data) if isinstance(exit_data, dict) else None,
        stdin_closed=bool(output.get("stdin_closed")),
    )
    for name in STREAMS:
        state = output.get(name, {})
        pending = directory / f"{name}.pending"
        data = pending.read_bytes() if pending.exists() else b""
        stored.streams[name] = StreamState(
            eof=bool(state.get("eof")), wanted=bool(state.get("wanted", True)), pending=data
        )
        pending.unlink(missing_ok=True)
    (directory / "output.json").unlink(missing_ok=True)
    return stored


class ProcessDepot:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._holder_pid = root / "holder.pid"

    def dir_for(self, container_id: str, exec_id: str) -> Path:
        return self.root / container_id / exec_id

    async def create(
        self, container_id: str, exec_id: str, process_id: str, tty: bool, pea: dict[str, Any] | None = None
    ) -> Path:
        directory = self.dir_for(container_id, exec_id)
        meta = {"id": process_id, "exec_id": exec_id, "tty": tty, **({"pea": pea} if pea else {})}

        def create() -> None:
            make_fifos(directory, FIFOS)
            _write_json(directory / "meta.json", meta)

        await asyncio.to_thread(create)
        return directory

    async def save_exit(self, directory: Path, result: ExitResult) -> None:
        def save() -> None:
            with contextlib.suppress(FileNotFoundError):  # the process was forgotten meanwhile
                _write_json(directory / "exit.json", result.to_json())
                for name in FIFOS:
                    (directory / name).unlink(missing_ok=True)

        await asyncio.to_thread(save)

    async def save_output(self, directory: Path, stdin_closed: bool, streams: dict[str, StreamState]) -> None:
        """What a shutdown leaves for the next gardend: stream states and undelivered output."""

        def save() -> None:
            if not directory.is_dir():
                return
            for name, state in streams.items():
                if state.pending:
                    (directory / f"{name}.pending").write_bytes(state.pending)
            document: dict[str, Any] = {"stdin_closed": stdin_closed}
            document.update({name: {"eof": s.eof, "wanted": s.wanted} for name, s in streams.items()})
            _write_json(directory / "output.json", document)

        await asyncio.to_thread(save)

    async def load(self, container_id: str) -> list[StoredProcess]:
        """The processes of a container as the last gardend left them; kept output is
        handed over once (removed from disk), so it is never delivered twice."""

        def load() -> list[StoredProcess]:
            base = self.root / container_id
            found = []
            for directory in sorted(base.iterdir()) if base.is_dir() else []:
                try:
                    stored = _load_one(directory)
                except (OSError, ValueError, KeyError, TypeError):
                    log.exception("unreadable process directory", extra={"path": str(directory)})
                    stored = None
                if stored is not None:
                    found.append(stored)
            return found

        return await asyncio.to_thread(load)

    async def remove_process(self, directory: Path) -> None:
        await asyncio.to_thread(shutil.rmtree, directory, True)

    async def remove_container(self, container_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root / container_id, True)

    async def remove_other_containers(self, keep: set[str]) -> None:
        def remove() -> None:
            for path in self.root.iterdir() if self.root.is_dir() else []:
                if path.is_dir() and path.name not in keep:
                    log.info("removing processes of an unknown container", extra={"path": str(path)})
                    shutil.rmtree(path, True)

        await asyncio.to_thread(remove)

    async def hold(self, fds: list[int]) -> None:
        """Starts a holder process that keeps ``fds`` open after gardend exits."""
        if not fds:
            return
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        # sh starts the holder in the background and exits, so the holder is nobody's child here.
        script = '"$0" -S -E -c "$1" "$2" </dev/null >/dev/null 2>&1 & echo $!'
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", script, sys.executable, _HOLDER, _HOLDER_MARK,
            pass_fds=fds, stdout=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        out, _ = await proc.communicate()
        await asyncio.to_thread(self._holder_pid.write_text, out.decode().strip())
        log.info("holding process output across the restart", extra={"pid": out.decode().strip(), "fds": len(fds)})

    async def release(self) -> None:
        """Stops the holder a previous gardend left, once its FIFOs are open again."""

        def release() -> None:
            try:
                pid = int(self._holder_pid.read_text())
            except (FileNotFoundError, ValueError):
                return
            with contextlib.suppress(OSError):
                if _HOLDER_MARK.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            self._holder_pid.unlink(missing_ok=True)

        await asyncio.to_thread(release)

"""Runs a command in a container straight through containerd, as a Garden process would run.

Security tests must look from inside a container; this stands in for the Garden process
API in them and can be swapped for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.containerd import errors as cerr
from gardend.runtime.spec import DEFAULT_PATH


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: str


def _unblock(fifo: Path) -> None:
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


async def run(srv: gardend_server.Server, handle: str, *argv: str, uid: int = 0, gid: int = 0) -> Result:
    """``argv`` as uid:gid in the container; its stdout, then its stderr.

    Each stream is a FIFO read to its end, which comes only once the shim has copied
    everything the process wrote.
    """
    backend = srv.garden.containers
    privileged = backend.get(handle).spec.privileged
    cid, exec_id = containerd_id(handle), f"test-{uuid.uuid4().hex[:12]}"
    fifos = [srv.config.depot / f"{exec_id}.{name}" for name in ("out", "err")]
    for fifo in fifos:
        os.mkfifo(fifo, 0o600)
    readers = [asyncio.create_task(asyncio.to_thread(fifo.read_bytes)) for fifo in fifos]
    process = {
        "args": list(argv),
        "env": [DEFAULT_PATH],
        "cwd": "/",
        "user": {"uid": uid, "gid": gid},
        "terminal": False,
        **backend.policy.process(privileged, root=uid == 0),
    }
    try:
        await srv.client.exec(cid, exec_id, process, stdout=str(fifos[0]), stderr=str(fifos[1]))
        await srv.client.start(cid, exec_id)
        code = await srv.client.wait(cid, exec_id)
        out, err = await asyncio.gather(*readers)
    finally:
        for fifo, reader in zip(fifos, readers, strict=True):
            if not reader.done():
                _unblock(fifo)
        with contextlib.suppress(cerr.NotFound):
            await srv.client.delete_process(cid, exec_id)
        for fifo in fifos:
            fifo.unlink()
    return Result(code, (out + err).decode(errors="replace"))

"""gardend's side of a transfer: start the helper and move bytes between HTTP and its pipes.

The helper grows its pipes to 1 MiB, so each pipe read or write moves a large chunk;
writes wait for the helper to catch up (backpressure), so memory stays flat whatever the
size of the tar. Whatever happens to the request, the helper does not outlive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterable, AsyncIterator

from gardend.files.transfer import FAILED, Transfer, TransferError

log = logging.getLogger("gardend.files")

HELPER = (sys.executable, "-I", "-m", "gardend.files.helper")
CHUNK = 1 << 20
MAX_STDERR = 64 << 10


async def _spawn(transfer: Transfer, stdin: int, stdout: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *HELPER,
        transfer.to_json(),
        stdin=stdin,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        pass_fds=(transfer.pidfd,),
        limit=CHUNK,
    )


async def _read_all(stream: asyncio.StreamReader, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < limit and (data := await stream.read(limit - size)):
        parts.append(data)
        size += len(data)
    return b"".join(parts)


async def _outcome(proc: asyncio.subprocess.Process) -> TransferError | None:
    """The helper's failure once it has exited, or None if it succeeded."""
    assert proc.stderr is not None
    errors = await _read_all(proc.stderr, MAX_STDERR)
    status = await proc.wait()
    if status == 0:
        return None
    lines = errors.decode(errors="replace").strip().splitlines()
    last = lines[-1] if lines else ""
    try:
        return TransferError.from_json(last)
    except (ValueError, KeyError, TypeError):
        log.error("transfer helper failed", extra={"status": status, "stderr": "\n".join(lines[-20:])})
        return TransferError(FAILED, f"transfer helper exited with status {status}: {last}")


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def stream_in(transfer: Transfer, body: AsyncIterable[bytes]) -> None:
    """Feeds ``body`` to an extracting helper; returns once extraction has finished.

    If the helper stops reading (it failed), the rest of the body is not read and its
    error is raised. An error reading ``body`` itself propagates and kills the helper.
    """
    proc = await _spawn(transfer, asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdin is not None
        async for chunk in body:
            if not await _feed(proc.stdin, chunk):
                break
        else:
            proc.stdin.close()
        failure = await _outcome(proc)
        if failure is not None:
            raise failure
    finally:
        await _stop(proc)


async def _feed(stdin: asyncio.StreamWriter, chunk: bytes) -> bool:
    try:
        stdin.write(chunk)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


@contextlib.asynccontextmanager
async def stream_out(transfer: Transfer) -> AsyncIterator[AsyncIterator[bytes]]:
    """Starts an archiving helper and waits for its first bytes.

    A failure before those (such as a missing source) raises here, while an error can
    still be answered; the iterator raises one that happens later.
    """
    proc = await _spawn(transfer, asyncio.subprocess.DEVNULL, asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = await proc.stdout.read(CHUNK)
        if not first:
            raise await _outcome(proc) or TransferError(FAILED, "transfer helper wrote no archive")
        yield _chunks(proc, first)
    finally:
        await _stop(proc)


async def _chunks(proc: asyncio.subprocess.Process, first: bytes) -> AsyncIterator[bytes]:
    assert proc.stdout is not None
    yield first
    while chunk := await proc.stdout.read(CHUNK):
        yield chunk
    failure = await _outcome(proc)
    if failure is not None:
        raise failure

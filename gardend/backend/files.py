"""StreamIn and StreamOut: Garden's paths and users on one side, a transfer helper on the other.

Paths are the container's: a relative one is relative to the user's home, as a process
would see it. The user is resolved in the container's own /etc/passwd. The helper
reaches the container through a pidfd of its init process, so it cannot be sent into
another process's namespaces by a pid reused in between.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import AsyncIterable, AsyncIterator

from gardend.backend import users
from gardend.backend.store import ContainerRecord
from gardend.containerd import errors as cerr
from gardend.containerd.client import ContainerdClient, TaskStatus
from gardend.errors import BadRequestError, GardenError, NotFoundError
from gardend.files import runner
from gardend.files.transfer import ARCHIVE, MISSING, PATH, PERMISSION, Direction, Transfer, TransferError

STREAM_IN = "error streaming in"
STREAM_OUT = "error streaming out"


def container_path(path: str, home: str, contents: bool) -> str:
    """``path`` made absolute against ``home``; ``contents`` marks it with a trailing ``/``."""
    full = posixpath.normpath(posixpath.join(home or "/", path))
    full = "/" + full.lstrip("/")
    return full + "/" if contents and full != "/" else full


def wants_contents(source: str) -> bool:
    """``dir/``, ``.`` and an empty source stream a directory's contents, named ``./...``."""
    return source in ("", ".") or source.endswith(("/", "/."))


def garden_error(prefix: str, err: TransferError) -> GardenError:
    message = f"{prefix}: {err.message}"
    if err.kind in (ARCHIVE, PATH):
        return BadRequestError(message)
    if err.kind == MISSING:
        return NotFoundError(message)
    if err.kind == PERMISSION:
        return GardenError(message, status=403)
    return GardenError(message)


class FileTransfers:
    def __init__(self, client: ContainerdClient) -> None:
        self.client = client

    async def stream_in(self, record: ContainerRecord, destination: str, user: str, body: AsyncIterable[bytes]) -> None:
        """Extracts the tar ``body`` at ``destination``; returns when extraction is done."""
        async with self._transfer(record, "in", destination, user, STREAM_IN) as transfer:
            try:
                await runner.stream_in(transfer, body)
            except TransferError as e:
                raise garden_error(STREAM_IN, e) from None

    @contextlib.asynccontextmanager
    async def stream_out(self, record: ContainerRecord, source: str, user: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """A tar of ``source``; errors found before its first byte are raised on entry."""
        async with self._transfer(record, "out", source, user, STREAM_OUT) as transfer:
            try:
                async with runner.stream_out(transfer) as chunks:
                    yield _reporting(chunks)
            except TransferError as e:
                raise garden_error(STREAM_OUT, e) from None

    @contextlib.asynccontextmanager
    async def _transfer(
        self, record: ContainerRecord, direction: Direction, path: str, user: str, prefix: str
    ) -> AsyncIterator[Transfer]:
        pid, pidfd = await self._init(record, prefix)
        try:
            try:
                who = await users.resolve(f"/proc/{pid}/root", user)
            except BadRequestError as e:
                raise BadRequestError(f"{prefix}: {e.message}") from None
            yield Transfer(
                direction=direction,
                path=container_path(path, who.home, direction == "out" and wants_contents(path)),
                uid=who.uid,
                gid=who.gid,
                groups=(who.gid, *who.additional_gids),
                pidfd=pidfd,
                user_namespace=not record.spec.privileged,
                allow_devices=record.spec.privileged,
            )
        finally:
            os.close(pidfd)

    async def _init(self, record: ContainerRecord, prefix: str) -> tuple[int, int]:
        """The pid of the container's init and a pidfd for it, checked to be the same process."""
        try:
            task = await self.client.get_task(record.id)
            if task.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED):
                raise ProcessLookupError(task.pid)
            pidfd = os.pidfd_open(task.pid)
            try:
                again = await self.client.get_task(record.id)
            except BaseException:
                os.close(pidfd)
                raise
        except (cerr.NotFound, ProcessLookupError):
            raise GardenError(f"{prefix}: container {record.handle} is not running") from None
        except cerr.ContainerdError as e:
            raise GardenError(f"{prefix}: {e}") from None
        if again.pid != task.pid:
            os.close(pidfd)
            raise GardenError(f"{prefix}: container {record.handle} restarted during the request")
        return int(task.pid), pidfd


async def _reporting(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except TransferError as e:
        raise garden_error(STREAM_OUT, e) from None

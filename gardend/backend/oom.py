"""Out-of-memory kills, from containerd's TaskOOM events, as Garden container events.

Guardian adds "Out of memory" to a container's ``Info.Events`` whenever the kernel kills a
process in it for exceeding its memory limit; clients such as Diego report it to users.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from google.protobuf.message import DecodeError

from api.containerd.events import task_pb2
from gardend.containerd import errors as cerr
from gardend.containerd.client import ContainerdClient

log = logging.getLogger("gardend.oom")

OOM_EVENT = "Out of memory"
OOM_TOPIC = "/tasks/oom"
RESUBSCRIBE_SECONDS = 1.0


class OomWatcher:
    """Calls ``on_oom(containerd id)`` for every OOM kill in this namespace, until closed."""

    def __init__(self, client: ContainerdClient, on_oom: Callable[[str], None]) -> None:
        self.client = client
        self.on_oom = on_oom
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        selector = f'topic=="{OOM_TOPIC}",namespace=="{self.client.namespace}"'
        while True:
            try:
                async for envelope in self.client.subscribe(selector):
                    oom = task_pb2.TaskOOM()
                    try:
                        oom.ParseFromString(envelope.event.value)
                    except DecodeError:
                        log.warning("undecodable OOM event", extra={"type": envelope.event.type_url})
                        continue
                    self.on_oom(oom.container_id)
            except cerr.ContainerdError as e:
                log.warning("event subscription ended; subscribing again", extra={"error": str(e)})
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

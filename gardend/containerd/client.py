"""Thin async client for the containerd API subset gardend uses.

Every unary call carries the namespace metadata and a deadline, so a dead or wedged
containerd surfaces as :class:`Unavailable` instead of hanging a request. Only ``wait``
and ``subscribe`` run without a deadline: they last as long as a process does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, empty_pb2, field_mask_pb2

from api.containerd.runc.options import oci_pb2 as runc_pb
from api.containerd.services.containers.v1 import containers_pb2 as c_pb
from api.containerd.services.containers.v1 import containers_pb2_grpc as c_grpc
from api.containerd.services.events.v1 import events_pb2 as ev_pb
from api.containerd.services.events.v1 import events_pb2_grpc as ev_grpc
from api.containerd.services.tasks.v1 import tasks_pb2 as t_pb
from api.containerd.services.tasks.v1 import tasks_pb2_grpc as t_grpc
from api.containerd.services.version.v1 import version_pb2_grpc as v_grpc
from api.containerd.types import event_pb2, metrics_pb2, mount_pb2
from api.containerd.types.task import task_pb2
from gardend.containerd.errors import Unavailable, wrap

SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RUNC_RUNTIME = "io.containerd.runc.v2"
RUNC_OPTIONS_TYPE_URL = "containerd.runc.v1.Options"

T = TypeVar("T")
Container = c_pb.Container
Mount = mount_pb2.Mount
Process = task_pb2.Process
TaskStatus = task_pb2.Status
Metric = metrics_pb2.Metric
Envelope = event_pb2.Envelope


def json_any(type_url: str, value: Mapping[str, Any]) -> any_pb2.Any:
    """containerd decodes OCI types from Any values that hold plain JSON."""
    return any_pb2.Any(type_url=type_url, value=json.dumps(value).encode())


class ContainerdClient:
    def __init__(self, address: str, namespace: str, timeout: float = 30.0) -> None:
        self.address = address
        self.namespace = namespace
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            f"unix://{address}",
            options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
        )
        self._metadata = (("containerd-namespace", namespace),)
        self._containers = c_grpc.ContainersStub(self._channel)
        self._tasks = t_grpc.TasksStub(self._channel)
        self._version = v_grpc.VersionStub(self._channel)
        self._events = ev_grpc.EventsStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, name: str, rpc: Callable[..., Awaitable[T]], request: Any, timeout: float | None = None) -> T:
        try:
            return await rpc(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as e:
            raise wrap(name, e) from None

    async def version(self, timeout: float | None = None) -> str:
        reply = await self._call("version", self._version.Version, empty_pb2.Empty(), timeout)
        return str(reply.version)

    # Containers

    async def get_container(self, container_id: str) -> Container:
        reply = await self._call("get container", self._containers.Get, c_pb.GetContainerRequest(id=container_id))
        return reply.container

    async def list_containers(self, *filters: str) -> list[Container]:
        """Containers matching any of ``filters``; conditions inside one filter are ANDed."""
        reply = await self._call("list containers", self._containers.List, c_pb.ListContainersRequest(filters=filters))
        return list(reply.containers)

    async def create_container(self, container: Container) -> Container:
        reply = await self._call(
            "create container", self._containers.Create, c_pb.CreateContainerRequest(container=container)
        )
        return reply.container

    async def update_container(self, container: Container, paths: list[str]) -> Container:
        request = c_pb.UpdateContainerRequest(container=container, update_mask=field_mask_pb2.FieldMask(paths=paths))
        reply = await self._call("update container", self._containers.Update, request)
        return reply.container

    async def delete_container(self, container_id: str) -> None:
        await self._call("delete container", self._containers.Delete, c_pb.DeleteContainerRequest(id=container_id))

    # Tasks

    async def create_task(
        self,
        container_id: str,
        rootfs: list[Mount],
        stdin: str = "",
        stdout: str = "",
        stderr: str = "",
        io_owner: tuple[int, int] | None = None,
        terminal: bool = False,
    ) -> int:
        """``io_owner`` (uid, gid) owns the pipes the shim makes for the stdio of the task's
        processes; runc can hand them to a process's user only if their owner is mapped."""
        options = None
        if io_owner is not None:
            opts = runc_pb.Options(io_uid=io_owner[0], io_gid=io_owner[1])
            options = any_pb2.Any(type_url=RUNC_OPTIONS_TYPE_URL, value=opts.SerializeToString())
        request = t_pb.CreateTaskRequest(
            container_id=container_id,
            rootfs=rootfs,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            terminal=terminal,
            options=options,
        )
        reply = await self._call("create task", self._tasks.Create, request)
        return int(reply.pid)

    async def start(self, container_id: str, exec_id: str = "") -> int:
        reply = await self._call(
            "start", self._tasks.Start, t_pb.StartRequest(container_id=container_id, exec_id=exec_id)
        )
        return int(reply.pid)

    async def delete_task(self, container_id: str) -> int:
        reply = await self._call("delete task", self._tasks.Delete, t_pb.DeleteTaskRequest(container_id=container_id))
        return int(reply.exit_status)

    async def delete_process(self, container_id: str, exec_id: str) -> int:
        request = t_pb.DeleteProcessRequest(container_id=container_id, exec_id=exec_id)
        reply = await self._call("delete process", self._tasks.DeleteProcess, request)
        return int(reply.exit_status)

    async def get_task(self, container_id: str, exec_id: str = "") -> Process:
        reply = await self._call(
            "get task", self._tasks.Get, t_pb.GetRequest(container_id=container_id, exec_id=exec_id)
        )
        return reply.process

    async def list_tasks(self) -> list[Process]:
        reply = await self._call("list tasks", self._tasks.List, t_pb.ListTasksRequest())
        return list(reply.tasks)

    async def kill(self, container_id: str, signal: int, exec_id: str = "", all_processes: bool = False) -> None:
        request = t_pb.KillRequest(container_id=container_id, exec_id=exec_id, signal=signal, all=all_processes)
        await self._call("kill", self._tasks.Kill, request)

    async def exec(
        self,
        container_id: str,
        exec_id: str,
        process: Mapping[str, Any],
        *,
        stdin: str = "",
        stdout: str = "",
        stderr: str = "",
        terminal: bool = False,
    ) -> None:
        request = t_pb.ExecProcessRequest(
            container_id=container_id,
            exec_id=exec_id,
            spec=json_any(PROCESS_TYPE_URL, process),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            terminal=terminal,
        )
        await self._call("exec", self._tasks.Exec, request)

    async def resize_pty(self, container_id: str, exec_id: str, width: int, height: int) -> None:
        request = t_pb.ResizePtyRequest(container_id=container_id, exec_id=exec_id, width=width, height=height)
        await self._call("resize pty", self._tasks.ResizePty, request)

    async def close_stdin(self, container_id: str, exec_id: str) -> None:
        request = t_pb.CloseIORequest(container_id=container_id, exec_id=exec_id, stdin=True)
        await self._call("close io", self._tasks.CloseIO, request)

    async def list_pids(self, container_id: str) -> list[int]:
        reply = await self._call("list pids", self._tasks.ListPids, t_pb.ListPidsRequest(container_id=container_id))
        return [int(p.pid) for p in reply.processes]

    async def metrics(self, *container_ids: str) -> list[Metric]:
        filters = [f'id=="{cid}"' for cid in container_ids]
        reply = await self._call("metrics", self._tasks.Metrics, t_pb.MetricsRequest(filters=filters))
        return list(reply.metrics)

    async def wait(self, container_id: str, exec_id: str = "") -> int:
        """Blocks until the process exits; no deadline, since processes run for hours."""
        request = t_pb.WaitRequest(container_id=container_id, exec_id=exec_id)
        try:
            reply = await self._tasks.Wait(request, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise wrap("wait", e) from None
        return int(reply.exit_status)

    async def subscribe(self, *filters: str) -> AsyncIterator[Envelope]:
        call = self._events.Subscribe(ev_pb.SubscribeRequest(filters=filters), metadata=self._metadata)
        try:
            async for envelope in call:
                yield envelope
        except grpc.aio.AioRpcError as e:
            raise wrap("subscribe", e) from None
        finally:
            call.cancel()


async def wait_until_ready(client: ContainerdClient, deadline: float, alive: Callable[[], bool]) -> str:
    """Polls containerd's version until it answers; raises if ``alive`` says it died."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last: Exception | None = None
    while loop.time() < end:
        if not alive():
            raise Unavailable("containerd exited before it answered")
        try:
            return await client.version(timeout=1.0)
        except Unavailable as e:
            last = e
            await asyncio.sleep(0.05)
    raise Unavailable(f"containerd did not answer within {deadline:.0f}s: {last}")

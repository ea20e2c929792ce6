"""The bare-containerd side: the same container as gardend makes, driven over the same stubs.

It uses gardend's OCI spec builder and rootfs layers so both sides run identical
containers; what it leaves out is exactly the Garden layer (HTTP, records, grace time).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import signal
from pathlib import Path

from gardend.config import Config
from gardend.containerd.client import RUNC_RUNTIME, SPEC_TYPE_URL, Container, ContainerdClient, json_any
from gardend.models import Limits
from gardend.rootfs.overlay import Overlay
from gardend.rootfs.source import ShiftedRootfsCache
from gardend.runtime.cgroups import ResourcePolicy
from gardend.runtime.security import SecurityPolicy
from gardend.runtime.spec import MAXIMUS, IdMapping, container_spec

NAMESPACE = "bench-bare"


class BareContainerd:
    def __init__(self, socket: str, depot: Path) -> None:
        self.client = ContainerdClient(socket, NAMESPACE)
        self.dir = depot / "bare"
        self.depot = depot
        self.lower = Path()
        self.init_binary = next((depot / "bin").glob("*/garden-init"))
        self._ids = itertools.count()
        defaults = Config()
        self.mapping = IdMapping(MAXIMUS, defaults.uid_map_start, defaults.uid_map_length)

    async def prepare(self, rootfs: Path) -> None:
        """Uses gardend's own id-shifted copy of the rootfs, as its containers do."""
        self.lower = await ShiftedRootfsCache(self.depot / "rootfs", self.mapping).get(rootfs)

    async def close(self) -> None:
        await self.client.close()

    async def create(self) -> str:
        cid = f"bare-{next(self._ids)}"
        overlay = Overlay(self.lower, self.dir / cid)
        await overlay.create(MAXIMUS, MAXIMUS, {})
        spec = container_spec(
            handle=cid,
            cgroups_path=f"/{NAMESPACE}/{cid}",
            env=[],
            privileged=False,
            id_mapping=self.mapping,
            init_binary=str(self.init_binary),
            bind_mounts=[],
            limits=Limits(),
            policy=SecurityPolicy(),
            resource_policy=ResourcePolicy(),
        )
        container = Container(id=cid, runtime=Container.Runtime(name=RUNC_RUNTIME), spec=json_any(SPEC_TYPE_URL, spec))
        await self.client.create_container(container)
        await self.client.create_task(cid, overlay.mounts())
        await self.client.start(cid)
        return cid

    async def destroy(self, cid: str) -> None:
        await self.client.kill(cid, signal.SIGKILL, all_processes=True)
        await self.client.wait(cid)
        await self.client.delete_task(cid)
        await self.client.delete_container(cid)
        await asyncio.to_thread(shutil.rmtree, self.dir / cid, True)

"""The private containerd that gardend starts by default, with everything under the depot.

It is supervised: if it dies, it is restarted (its shims and containers keep running and
are picked up again), and if it keeps dying gardend reports it through ``healthy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from gardend.containerd.client import ContainerdClient, wait_until_ready
from gardend.containerd.errors import Unavailable

log = logging.getLogger("gardend.containerd")

READY_TIMEOUT = 30.0
MAX_RESTARTS = 5

# Version 2 is the one config version that containerd 1.6 through 2.x all accept (2.x
# migrates it). Plugins gardend never uses are off, including 2.x's split CRI and NRI, so
# the private containerd touches no host-wide CNI or NRI sockets; 1.6 ignores unknown ids.
_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.sandbox.controller.v1.shim",
  "io.containerd.grpc.v1.sandbox-controllers",
  "io.containerd.grpc.v1.sandboxes",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs",
  "io.containerd.mount-handler.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""
"""


class EmbeddedContainerd:
    def __init__(self, depot: Path, binary: str = "containerd") -> None:
        self.dir = depot / "containerd"
        self.socket = str(self.dir / "containerd.sock")
        self.binary = binary
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = True

    def _write_config(self) -> Path:
        for sub in ("root", "state"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        config = self.dir / "config.toml"
        config.write_text(_CONFIG.format(root=self.dir / "root", state=self.dir / "state", socket=self.socket))
        return config

    @property
    def _pidfile(self) -> Path:
        return self.dir / "containerd.pid"

    def _predecessor(self, config: Path) -> int | None:
        """The containerd a gardend that died without stopping it left on this depot, if any.

        Its pid must still run containerd with this depot's config, so a reused pid is
        never mistaken for it."""
        try:
            pid = int(self._pidfile.read_text())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if str(config).encode() in argv else None

    async def _stop_predecessor(self, config: Path) -> None:
        pid = await asyncio.to_thread(self._predecessor, config)
        if pid is None:
            return
        log.warning("stopping the containerd a previous gardend left running", extra={"pid": pid})
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if not await asyncio.to_thread(os.path.exists, f"/proc/{pid}"):
                return
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    async def _spawn(self) -> None:
        config = await asyncio.to_thread(self._write_config)
        await self._stop_predecessor(config)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        logfile = await asyncio.to_thread(open, self.dir / "containerd.log", "ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, "--config", str(config), stdout=logfile, stderr=logfile, start_new_session=True
            )
        finally:
            logfile.close()
        await asyncio.to_thread(self._pidfile.write_text, f"{self._proc.pid}\n")
        probe = ContainerdClient(self.socket, "default")
        try:
            version = await wait_until_ready(
                probe, READY_TIMEOUT, lambda: self._proc is not None and self._proc.returncode is None
            )
        except Unavailable as e:
            await self._kill()
            raise Unavailable(f"{e}; see {self.dir / 'containerd.log'}") from None
        finally:
            await probe.close()
        log.info("containerd ready", extra={"socket": self.socket, "version": version, "pid": self._proc.pid})

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        restarts = 0
        while not self._stopping and self._proc is not None:
            code = await self._proc.wait()
            if self._stopping:
                return
            log.error("containerd exited", extra={"exit_code": code, "restarts": restarts})
            if restarts >= MAX_RESTARTS:
                self.healthy = False
                return
            restarts += 1
            try:
                await self._spawn()
            except Unavailable:
                log.exception("containerd restart failed")
                self.healthy = False
                return

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._kill()

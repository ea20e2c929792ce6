"""Runs commands in a container through Garden's own process API, for tests that must look
from inside a container (capabilities, mounts, limits, network reachability)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gardend import server as gardend_server
from gardend.client import GardenClient, GardenProcess


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: str


def _spec(argv: tuple[str, ...], uid: int, gid: int) -> dict[str, Any]:
    return {"path": argv[0], "args": list(argv[1:]), "user": f"{uid}:{gid}", "dir": "/"}


def _client(srv: gardend_server.Server) -> GardenClient:
    """A client for ``srv``; one serving TLS gets the test PKI's worker certificate, which lies beside its CA."""
    if not srv.config.tls_cert:
        return GardenClient(f"http://{srv.config.bind_ip}:{srv.config.bind_port}")
    pki = Path(srv.config.tls_ca).parent
    ctx = ssl.create_default_context(cafile=srv.config.tls_ca)
    ctx.load_cert_chain(str(pki / "worker.crt"), str(pki / "worker.key"))
    return GardenClient(f"https://{srv.config.bind_ip}:{srv.config.bind_port}", ssl=ctx)


async def _run(
    srv: gardend_server.Server, handle: str, argv: tuple[str, ...], uid: int, gid: int, **sinks: Any
) -> tuple[GardenClient, GardenProcess]:
    client = _client(srv)
    try:
        return client, await client.run(handle, _spec(argv, uid, gid), **sinks)
    except BaseException:
        await client.close()
        raise


async def run(srv: gardend_server.Server, handle: str, *argv: str, uid: int = 0, gid: int = 0) -> Result:
    """``argv`` as uid:gid in the container, to its end; its stdout, then its stderr."""
    out, err = bytearray(), bytearray()
    client, process = await _run(srv, handle, argv, uid, gid, stdout=out.extend, stderr=err.extend)
    try:
        code = await process.wait()
    finally:
        await client.close()
    return Result(code, (bytes(out) + bytes(err)).decode(errors="replace"))


async def run_in(srv: gardend_server.Server, handle: str, *argv: str) -> int:
    """Runs ``argv`` as container root to completion; returns its exit status."""
    return (await run(srv, handle, *argv)).exit_code


async def start_in(srv: gardend_server.Server, handle: str, *argv: str) -> str:
    """Starts ``argv`` as container root and leaves it running; returns its process id."""
    client, process = await _run(srv, handle, argv, 0, 0)
    try:
        await process.detach()
    finally:
        await client.close()
    return process.id

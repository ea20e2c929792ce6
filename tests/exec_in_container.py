"""Runs shell scripts in a container straight through containerd, as root.

Stands in for Garden's process API in the resource tests; swap it for the Run route
once that exists.
"""

from __future__ import annotations

import uuid

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.runtime import capabilities


def _process(script: str, privileged: bool) -> dict[str, object]:
    return {
        "args": ["sh", "-c", script],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "capabilities": capabilities.for_process(privileged, True),
    }


async def start(gardend: gardend_server.Server, handle: str, script: str, privileged: bool = False) -> str:
    """Starts ``script`` without waiting for it; returns its exec id."""
    container_id, exec_id = containerd_id(handle), f"test-{uuid.uuid4().hex[:12]}"
    await gardend.client.exec(container_id, exec_id, _process(script, privileged))
    await gardend.client.start(container_id, exec_id)
    return exec_id


async def run(gardend: gardend_server.Server, handle: str, script: str, privileged: bool = False) -> int:
    """Runs ``script`` to the end and returns its exit status (128+signal when killed)."""
    exec_id = await start(gardend, handle, script, privileged)
    status = await gardend.client.wait(containerd_id(handle), exec_id)
    await gardend.client.delete_process(containerd_id(handle), exec_id)
    return status

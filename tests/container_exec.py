"""Runs a command in a container through containerd directly, for tests that need processes.

One small helper so that it can be swapped for Garden's process API once that exists.
"""

from __future__ import annotations

import uuid

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.runtime import capabilities
from gardend.runtime.spec import DEFAULT_PATH


async def start_in(srv: gardend_server.Server, handle: str, *argv: str, privileged: bool = False) -> str:
    """Starts ``argv`` as container root; returns its exec id. Destroying the container ends it."""
    exec_id = f"test-{uuid.uuid4().hex[:12]}"
    process = {
        "args": list(argv),
        "env": [DEFAULT_PATH],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
        "capabilities": capabilities.for_process(privileged, root=True),
        "terminal": False,
    }
    await srv.client.exec(containerd_id(handle), exec_id, process)
    await srv.client.start(containerd_id(handle), exec_id)
    return exec_id


async def run_in(srv: gardend_server.Server, handle: str, *argv: str, privileged: bool = False) -> int:
    """Runs ``argv`` as container root to completion; returns its exit status."""
    exec_id = await start_in(srv, handle, *argv, privileged=privileged)
    status = await srv.client.wait(containerd_id(handle), exec_id)
    await srv.client.delete_process(containerd_id(handle), exec_id)
    return status

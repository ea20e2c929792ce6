"""The OCI spec of a pea: a process with its own rootfs inside an existing (sandbox) container.

A pea joins the sandbox's network, IPC, UTS and PID namespaces (and its user namespace when
unprivileged) by path, and has its own mount namespace over its own rootfs. The sandbox's
/etc/hosts and /etc/resolv.conf are bind-mounted into it, so both see the same files.
"""

from __future__ import annotations

from typing import Any

from gardend.models import BindMount, Limits
from gardend.runtime.cgroups import ResourcePolicy
from gardend.runtime.security import SecurityPolicy
from gardend.runtime.spec import IdMapping, container_spec

SHARED_NAMESPACES = ("network", "ipc", "uts", "pid")
_NS_FILES = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "user": "user"}
SHARED_FILES = ("/etc/hosts", "/etc/resolv.conf")


def pea_spec(
    *,
    process: dict[str, Any],
    sandbox_pid: int,
    shared_files: dict[str, str],
    cgroups_path: str,
    limits: Limits,
    privileged: bool,
    id_mapping: IdMapping | None,
    init_binary: str,
    bind_mounts: list[BindMount],
    resource_policy: ResourcePolicy,
    policy: SecurityPolicy,
) -> dict[str, Any]:
    """``shared_files`` maps a destination in the pea to its host source in the sandbox."""
    spec = container_spec(
        handle="",
        cgroups_path=cgroups_path,
        env=[],
        privileged=privileged,
        id_mapping=id_mapping,
        init_binary=init_binary,
        bind_mounts=bind_mounts,
        limits=limits,
        resource_policy=resource_policy,
        policy=policy,
    )
    del spec["hostname"]
    spec["process"] = process
    joined = [*SHARED_NAMESPACES, *(() if id_mapping is None else ("user",))]
    spec["linux"]["namespaces"] = [
        {"type": "mount"},
        *({"type": t, "path": f"/proc/{sandbox_pid}/ns/{_NS_FILES[t]}"} for t in joined),
    ]
    spec["mounts"] += [
        {"destination": dst, "type": "bind", "source": src, "options": ["bind", "rw"]}
        for dst, src in shared_files.items()
    ]
    return spec

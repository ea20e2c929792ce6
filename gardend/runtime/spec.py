"""The OCI runtime spec of a Garden container, as runc receives it through containerd."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gardend.init import CONTAINER_PATH as INIT_PATH
from gardend.models import BindMount, BindMountMode, BindMountOrigin, CPULimits, Limits
from gardend.runtime.cgroups import ResourcePolicy
from gardend.runtime.security import SecurityPolicy

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_HOSTNAME = 49
MAXIMUS = 4294967294
"""The host id that is root in unprivileged containers, as in Guardian."""
MAX_INT64 = 2**63 - 1
CPU_PERIOD, MIN_CPU_QUOTA = 100_000, 1000
"""Guardian's CFS period and smallest quota (µs)."""


@dataclass(frozen=True)
class IdMapping:
    """How container ids map to host ids in unprivileged containers, as gdn maps them:
    container root is ``root_host_id``, container ids from 1 are host ids from ``start``."""

    root_host_id: int
    start: int
    length: int

    def oci(self) -> list[dict[str, int]]:
        return [
            {"containerID": 0, "hostID": self.root_host_id, "size": 1},
            {"containerID": 1, "hostID": self.start, "size": self.length},
        ]

    def to_host(self, container_id: int) -> int | None:
        """The host id of a container id, or None if the container cannot hold it."""
        if container_id == 0:
            return self.root_host_id
        if 1 <= container_id <= self.length:
            return self.start + container_id - 1
        return None


def hostname_for(handle: str) -> str:
    return handle[-MAX_HOSTNAME:]


def _mounts(privileged: bool, init_binary: str, bind_mounts: list[BindMount], rootfs: str) -> list[dict[str, Any]]:
    sys_options = ["nosuid", "noexec", "nodev", "ro"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "noexec", "nodev", "mode=1777"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {"destination": INIT_PATH, "type": "bind", "source": init_binary, "options": ["bind", "ro"]},
    ]  # fmt: skip
    if not privileged:
        mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})  # fmt: skip
    for bm in bind_mounts:
        source = bm.src_path if bm.origin == BindMountOrigin.HOST else f"{rootfs}/{bm.src_path.lstrip('/')}"
        # Not recursive: mounts below the source would not inherit a read-only flag.
        options = ["bind", "rw" if bm.mode == BindMountMode.RW else "ro"]
        mounts.append({"destination": bm.dst_path, "type": "bind", "source": source, "options": options})
    return mounts


def cpu_shares(limits: CPULimits) -> int:
    """``weight`` wins over the deprecated ``limit_in_shares``, as in Guardian."""
    return limits.weight or limits.limit_in_shares


def resources(limits: Limits, policy: ResourcePolicy) -> dict[str, Any]:
    """cgroup resources for the container's limits; unset limits are left out."""
    res: dict[str, Any] = {}
    if limits.memory_limits.limit_in_bytes:
        limit = min(limits.memory_limits.limit_in_bytes, MAX_INT64)
        res["memory"] = {"limit": limit, "swap": limit} if policy.swap_limit else {"limit": limit}
    shares = cpu_shares(limits.cpu_limits)
    if shares:
        res["cpu"] = {"shares": shares}
        if policy.cpu_quota_per_share:
            quota = max(MIN_CPU_QUOTA, shares * policy.cpu_quota_per_share)
            res["cpu"].update(period=CPU_PERIOD, quota=min(quota, MAX_INT64))
    if limits.pid_limits.max:
        res["pids"] = {"limit": min(limits.pid_limits.max, MAX_INT64)}
    return res


def container_spec(
    *,
    handle: str,
    cgroups_path: str,
    env: list[str],
    privileged: bool,
    id_mapping: IdMapping | None,
    init_binary: str,
    bind_mounts: list[BindMount],
    limits: Limits,
    resource_policy: ResourcePolicy,
    policy: SecurityPolicy,
) -> dict[str, Any]:
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
        "resources": {**resources(limits, resource_policy), "devices": policy.devices_cgroup(privileged)},
        **policy.linux(privileged),
    }
    if id_mapping is not None:
        namespaces.append({"type": "user"})
        linux["uidMappings"] = id_mapping.oci()
        linux["gidMappings"] = id_mapping.oci()
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [INIT_PATH],
            "env": [DEFAULT_PATH, *env],
            "cwd": "/",
            **policy.process(privileged, root=True),
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname_for(handle),
        "mounts": _mounts(privileged, init_binary, bind_mounts, "rootfs"),
        "linux": linux,
    }

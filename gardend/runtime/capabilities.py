"""Capability sets as Guardian grants them, clipped to what this host can give."""

from __future__ import annotations

import functools

CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
]  # fmt: skip

UNPRIVILEGED = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]  # fmt: skip

PRIVILEGED_NON_ROOT = [*UNPRIVILEGED, "CAP_SYS_ADMIN"]


@functools.cache
def host_bounding_set() -> frozenset[str]:
    """Capabilities this host can grant: asking runc for more makes every start fail."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return frozenset(name for bit, name in enumerate(CAPABILITIES) if mask >> bit & 1)
    return frozenset(CAPABILITIES)


def for_process(privileged: bool, root: bool) -> dict[str, list[str]]:
    """The OCI capabilities object for a process run as root or not, in either kind of container.

    As in Guardian, the inheritable set equals the bounding set, and non-root processes get
    no permitted or effective capabilities, as a plain exec as that user would.
    """
    wanted = CAPABILITIES if privileged and root else PRIVILEGED_NON_ROOT if privileged else UNPRIVILEGED
    granted = [c for c in wanted if c in host_bounding_set()]
    held = granted if root else []
    return {"bounding": granted, "effective": held, "permitted": held, "inheritable": granted, "ambient": []}

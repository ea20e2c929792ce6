"""What confines a container beyond its namespaces: capabilities, seccomp, masked paths,
devices and no_new_privileges, for unprivileged and privileged containers alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gardend.runtime import capabilities, devices, seccomp

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]  # fmt: skip
"""Hidden in every container (runc skips those this kernel lacks)."""

READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
"""Read-only in unprivileged containers; privileged ones may tune /proc/sys, as with gdn."""

PING_GROUP_RANGE = "1 65535"
"""With no_new_privileges file capabilities are ignored, so ping needs ICMP sockets instead."""


@dataclass(frozen=True)
class SecurityPolicy:
    """The server-wide choices (gdn's --no-new-privileges and --device-cgroup-rule)."""

    no_new_privileges: bool = False
    device_rules: tuple[devices.DeviceRule, ...] = ()

    def process(self, privileged: bool, root: bool) -> dict[str, Any]:
        """OCI ``process`` fields for a process run as root or not in such a container."""
        return {
            "capabilities": capabilities.for_process(privileged, root),
            "noNewPrivileges": self.no_new_privileges and not privileged,
        }

    def linux(self, privileged: bool) -> dict[str, Any]:
        """OCI ``linux`` fields; the devices cgroup is in ``devices_cgroup``, as it belongs in resources."""
        fields: dict[str, Any] = {
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": [] if privileged else READONLY_PATHS,
            "devices": devices.device_nodes(privileged),
        }
        if not privileged:
            root_caps = capabilities.for_process(privileged, root=True)["bounding"]
            fields["seccomp"] = seccomp.profile(root_caps)
            if self.no_new_privileges:
                fields["sysctl"] = {"net.ipv4.ping_group_range": PING_GROUP_RANGE}
        return fields

    def devices_cgroup(self, privileged: bool) -> list[dict[str, Any]]:
        return devices.cgroup_rules(privileged, self.device_rules)

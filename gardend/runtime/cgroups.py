"""What this host's cgroups can do, and the cgroup v1 to v2 conversions Garden reports."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED_MARKER = "cgroup.controllers"
"""Only a unified (v2) hierarchy mounted at /sys/fs/cgroup has this file at its top."""


@dataclass(frozen=True)
class CgroupHost:
    """Detected once at start: runc applies the same OCI resources to either version."""

    v2: bool = False
    swap_limit: bool = False
    """Whether a memory+swap limit can be set (v1 needs swap accounting for memory.memsw)."""


@dataclass(frozen=True)
class ResourcePolicy:
    """Server-wide choices about how container limits become cgroup settings."""

    swap_limit: bool = False
    """Cap memory+swap at the memory limit, so a process over it is OOM-killed, not swapped."""
    cpu_quota_per_share: int = 0
    """gdn's ``--cpu-quota-per-share``: a hard CPU cap (µs per period) proportional to shares."""


def detect(root: Path = CGROUP_ROOT) -> CgroupHost:
    """Blocking (reads sysfs); call it off the event loop."""
    if (root / UNIFIED_MARKER).exists():
        return CgroupHost(v2=True, swap_limit=True)
    return CgroupHost(v2=False, swap_limit=os.path.exists(root / "memory" / "memory.memsw.limit_in_bytes"))


def shares_to_v2_weight(shares: int) -> int:
    """runc's (and Guardian's) ``ConvertCPUSharesToCgroupV2Value``: cpu.shares to cpu.weight."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    exponent = math.log2(shares)
    return math.ceil(10 ** ((exponent * exponent + 125 * exponent) / 612.0 - 7.0 / 34.0))

"""The limits in force on a container, as the ``limits/{kind}`` routes report them, and the
ones applied outside the OCI spec's cgroup resources (bandwidth)."""

from __future__ import annotations

import logging

from gardend.backend.store import ContainerRecord
from gardend.models import CPULimits, WireModel
from gardend.runtime import bandwidth
from gardend.runtime.cgroups import CgroupHost, shares_to_v2_weight
from gardend.runtime.spec import cpu_shares

log = logging.getLogger("gardend.limits")

LIMIT_KINDS = ("bandwidth", "cpu", "disk", "memory")


def current_limits(record: ContainerRecord, kind: str, host: CgroupHost) -> WireModel:
    """What was applied at create; CPU as the cgroup holds it (v2 stores a converted weight)."""
    limits = record.spec.limits
    if kind == "cpu":
        shares = cpu_shares(limits.cpu_limits)
        return CPULimits(limit_in_shares=shares_to_v2_weight(shares) if host.v2 else shares)
    by_kind: dict[str, WireModel] = {
        "bandwidth": limits.bandwidth_limits,
        "disk": limits.disk_limits,
        "memory": limits.memory_limits,
    }
    return by_kind[kind]


async def apply_bandwidth(record: ContainerRecord, init_pid: int) -> None:
    """Shapes the container's interfaces if it has a bandwidth limit.

    Must run once the container's network is attached: a container without interfaces
    has no traffic to shape, and the limit is then only recorded (and logged as such).
    """
    limit = record.spec.limits.bandwidth_limits
    if not limit.rate:
        return
    shaped = await bandwidth.shape(f"/proc/{init_pid}/ns/net", limit)
    if shaped:
        log.info("bandwidth limited", extra={"handle": record.handle, "interfaces": shaped})
    else:
        log.warning("bandwidth limit not enforced: container has no network interface", extra={"handle": record.handle})

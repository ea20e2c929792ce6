"""containerd's task metrics (cgroup v1 or v2 statistics) as Garden's memory, CPU and pid stats.

Memory follows Guardian: ``TotalUsageTowardLimit`` is what the kernel charges against the
limit minus the page cache it would reclaim first (inactive file pages).
"""

from __future__ import annotations

from dataclasses import dataclass

from api.cgroups.v1 import metrics_pb2 as v1
from api.cgroups.v2 import metrics_pb2 as v2
from gardend.containerd.client import Metric
from gardend.errors import GardenError
from gardend.models import ContainerCPUStat, ContainerMemoryStat, ContainerPidStat

V1_TYPE = "io.containerd.cgroups.v1.Metrics"
V2_TYPE = "io.containerd.cgroups.v2.Metrics"
MAX_U64 = 2**64 - 1
NS_PER_USEC = 1000


@dataclass(frozen=True)
class CgroupStats:
    memory: ContainerMemoryStat
    cpu: ContainerCPUStat
    pids: ContainerPidStat


def decode(metric: Metric) -> CgroupStats:
    """The stats in one containerd Metric, whichever cgroup version produced them."""
    type_name = metric.data.type_url.rsplit("/", 1)[-1]
    if type_name == V1_TYPE:
        m1 = v1.Metrics()
        m1.ParseFromString(metric.data.value)
        return _from_v1(m1)
    if type_name == V2_TYPE:
        m2 = v2.Metrics()
        m2.ParseFromString(metric.data.value)
        return _from_v2(m2)
    raise GardenError(f"containerd reported metrics of unknown type {metric.data.type_url!r} for {metric.id}")


def _minus(a: int, b: int) -> int:
    return max(0, a - b)


def _from_v1(m: v1.Metrics) -> CgroupStats:
    mem = m.memory
    swap = _minus(mem.swap.usage, mem.usage.usage)  # containerd's v1 "swap" is memory.memsw: memory + swap
    memory = ContainerMemoryStat(
        active_anon=mem.active_anon,
        active_file=mem.active_file,
        cache=mem.cache,
        hierarchical_memory_limit=mem.hierarchical_memory_limit,
        inactive_anon=mem.inactive_anon,
        inactive_file=mem.inactive_file,
        mapped_file=mem.mapped_file,
        pgfault=mem.pg_fault,
        pgmajfault=mem.pg_maj_fault,
        pgpgin=mem.pg_pg_in,
        pgpgout=mem.pg_pg_out,
        rss=mem.rss,
        total_active_anon=mem.total_active_anon,
        total_active_file=mem.total_active_file,
        total_cache=mem.total_cache,
        total_inactive_anon=mem.total_inactive_anon,
        total_inactive_file=mem.total_inactive_file,
        total_mapped_file=mem.total_mapped_file,
        total_pgfault=mem.total_pg_fault,
        total_pgmajfault=mem.total_pg_maj_fault,
        total_pgpgin=mem.total_pg_pg_in,
        total_pgpgout=mem.total_pg_pg_out,
        total_rss=mem.total_rss,
        total_unevictable=mem.total_unevictable,
        unevictable=mem.unevictable,
        swap=swap,
        hierarchical_memsw_limit=mem.hierarchical_swap_limit,
        total_swap=swap,
        total_usage_toward_limit=_minus(mem.total_rss + mem.total_cache, mem.total_inactive_file),
        anon=mem.rss,
        file=mem.cache,
    )
    cpu = ContainerCPUStat(usage=m.cpu.usage.total, user=m.cpu.usage.user, system=m.cpu.usage.kernel)
    return CgroupStats(memory, cpu, ContainerPidStat(current=m.pids.current, max=m.pids.limit))


def _from_v2(m: v2.Metrics) -> CgroupStats:
    """v2 has no separate hierarchical counters: a container's cgroup has no children."""
    mem = m.memory
    memory = ContainerMemoryStat(
        active_anon=mem.active_anon,
        active_file=mem.active_file,
        cache=mem.file,
        hierarchical_memory_limit=mem.usage_limit,
        inactive_anon=mem.inactive_anon,
        inactive_file=mem.inactive_file,
        mapped_file=mem.file_mapped,
        pgfault=mem.pgfault,
        pgmajfault=mem.pgmajfault,
        rss=mem.anon,
        total_active_anon=mem.active_anon,
        total_active_file=mem.active_file,
        total_cache=mem.file,
        total_inactive_anon=mem.inactive_anon,
        total_inactive_file=mem.inactive_file,
        total_mapped_file=mem.file_mapped,
        total_pgfault=mem.pgfault,
        total_pgmajfault=mem.pgmajfault,
        total_rss=mem.anon,
        total_unevictable=mem.unevictable,
        unevictable=mem.unevictable,
        swap=mem.swap_usage,
        hierarchical_memsw_limit=min(MAX_U64, mem.usage_limit + mem.swap_limit),
        total_swap=mem.swap_usage,
        total_usage_toward_limit=_minus(mem.usage, mem.inactive_file),
        anon=mem.anon,
        file=mem.file,
    )
    cpu = ContainerCPUStat(
        usage=m.cpu.usage_usec * NS_PER_USEC,
        user=m.cpu.user_usec * NS_PER_USEC,
        system=m.cpu.system_usec * NS_PER_USEC,
    )
    return CgroupStats(memory, cpu, ContainerPidStat(current=m.pids.current, max=m.pids.limit))

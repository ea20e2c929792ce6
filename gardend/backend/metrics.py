"""Garden Metrics for containers: cgroup stats from containerd, disk and network from the host.

One containerd Metrics call and one task listing serve any number of containers, so bulk
metrics for hundreds of containers cost a few round trips plus the host-side reads.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gardend.backend.cgroup_metrics import decode
from gardend.backend.disk import LayerDisks
from gardend.backend.store import ContainerRecord
from gardend.containerd import errors as cerr
from gardend.containerd.client import ContainerdClient
from gardend.errors import GardenError
from gardend.models import ContainerNetworkStat, Metrics
from gardend.rootfs.overlay import Overlay
from gardend.runtime.spec import cpu_shares

LOOPBACK = "lo"


@dataclass(frozen=True)
class HostShare:
    """Guardian's default CPU entitlement: the host's cores spread over its memory in MiB,
    so a container whose shares equal its memory limit in MiB is entitled to its share."""

    cores: int
    memory_mib: int

    def entitlement_ns(self, shares: int, age_ns: int) -> int:
        """CPU time (ns) the container's shares entitle it to over its lifetime."""
        return shares * self.cores * age_ns // max(1, self.memory_mib)


def detect_host_share() -> HostShare:
    """Blocking (reads /proc); call it off the event loop."""
    with open("/proc/meminfo") as f:
        mem_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return HostShare(cores=len(os.sched_getaffinity(0)), memory_mib=mem_kib // 1024)


def network_stat(pid: int) -> ContainerNetworkStat | None:
    """Traffic through the interfaces of ``pid``'s network namespace other than loopback;
    None when it has none (the container has no network). Blocking."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    rx = tx = 0
    interfaces = 0
    for line in lines:
        name, _, counters = line.partition(":")
        if name.strip() == LOOPBACK:
            continue
        fields = counters.split()
        rx, tx, interfaces = rx + int(fields[0]), tx + int(fields[8]), interfaces + 1
    return ContainerNetworkStat(rx_bytes=rx, tx_bytes=tx) if interfaces else None


class MetricsCollector:
    def __init__(self, client: ContainerdClient, disks: LayerDisks, containers_dir: Path) -> None:
        self.client = client
        self.disks = disks
        self.containers_dir = containers_dir
        self._host: HostShare | None = None

    async def collect(self, records: Sequence[ContainerRecord]) -> dict[str, Metrics | GardenError]:
        """Metrics per handle; a container that cannot be measured gets an error instead."""
        if not records:
            return {}
        if self._host is None:
            self._host = await asyncio.to_thread(detect_host_share)
        try:
            metric_list, tasks = await asyncio.gather(
                self.client.metrics(*(r.id for r in records)), self.client.list_tasks()
            )
        except cerr.ContainerdError as e:
            raise GardenError(f"reading container metrics from containerd: {e}") from None
        cgroup_metrics = {m.id: m for m in metric_list}
        pids = {t.id: int(t.pid) for t in tasks}
        layers = {
            r.id: (Overlay(Path(r.spec.lower), self.containers_dir / r.id).upper, Path(r.spec.lower)) for r in records
        }
        disks = await self.disks.stats(layers)
        measured = {r.id: pids[r.id] for r in records if r.id in pids}
        networks = await asyncio.to_thread(lambda: {cid: network_stat(pid) for cid, pid in measured.items()})
        results: dict[str, Metrics | GardenError] = {}
        for record in records:
            metric = cgroup_metrics.get(record.id)
            if metric is None:
                results[record.handle] = GardenError(f"container {record.handle} has no running task to measure")
                continue
            try:
                stats = decode(metric)
            except GardenError as e:
                results[record.handle] = e
                continue
            age = record.age_ns
            results[record.handle] = Metrics(
                memory_stat=stats.memory,
                cpu_stat=stats.cpu,
                disk_stat=disks[record.id],
                network_stat=networks.get(record.id),
                pid_stat=stats.pids,
                age=age,
                cpu_entitlement=self._host.entitlement_ns(cpu_shares(record.spec.limits.cpu_limits), age),
            )
        return results

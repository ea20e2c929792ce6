"""cgroup statistics in Garden's terms, for the cgroup version this host does not run."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from api.cgroups.v1 import metrics_pb2 as v1
from api.cgroups.v2 import metrics_pb2 as v2
from gardend.backend.cgroup_metrics import V1_TYPE, V2_TYPE, decode
from gardend.containerd.client import Metric
from gardend.errors import GardenError
from gardend.runtime.cgroups import shares_to_v2_weight


@pytest.mark.parametrize(("shares", "weight"), [(0, 0), (2, 1), (280, 37), (1024, 100), (1028, 101), (300000, 10000)])
def test_cpu_shares_convert_to_v2_weights_as_runc_does(shares: int, weight: int) -> None:
    assert shares_to_v2_weight(shares) == weight


def test_v2_metrics_become_garden_stats() -> None:
    raw = v2.Metrics(
        pids=v2.PidsStat(current=3, limit=50),
        cpu=v2.CPUStat(usage_usec=1500, user_usec=1000, system_usec=500),
        memory=v2.MemoryStat(anon=4096, file=8192, inactive_file=2048, usage=12288, usage_limit=1 << 30),
    )
    stats = decode(Metric(id="c", data=any_pb2.Any(type_url=V2_TYPE, value=raw.SerializeToString())))
    assert (stats.cpu.usage, stats.cpu.user, stats.cpu.system) == (1_500_000, 1_000_000, 500_000)
    assert (stats.pids.current, stats.pids.max) == (3, 50)
    assert stats.memory.total_usage_toward_limit == 12288 - 2048
    assert (stats.memory.rss, stats.memory.cache, stats.memory.anon, stats.memory.file) == (4096, 8192, 4096, 8192)
    assert stats.memory.hierarchical_memory_limit == 1 << 30


def test_v1_swap_is_memsw_usage_minus_memory_usage() -> None:
    raw = v1.Metrics(
        memory=v1.MemoryStat(
            total_rss=100, total_cache=50, total_inactive_file=20,
            usage=v1.MemoryEntry(usage=150), swap=v1.MemoryEntry(usage=170),
        )
    )  # fmt: skip
    stats = decode(Metric(id="c", data=any_pb2.Any(type_url=V1_TYPE, value=raw.SerializeToString())))
    assert stats.memory.total_usage_toward_limit == 130
    assert stats.memory.swap == 20


def test_metrics_of_an_unknown_type_are_an_error() -> None:
    with pytest.raises(GardenError, match="unknown type"):
        decode(Metric(id="c", data=any_pb2.Any(type_url="example.Other", value=b"")))

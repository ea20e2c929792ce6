"""Garden wire types: the JSON bodies the Go client sends and expects, as pydantic models.

Keys follow Go's ``encoding/json`` rules for the Garden types (see the protocol doc):
tagged fields are snake_case, untagged ones PascalCase. A missing key is the zero value,
and unknown keys are ignored, as the Go client does.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

U8 = Annotated[int, Field(ge=0, le=2**8 - 1)]
U16 = Annotated[int, Field(ge=0, le=2**16 - 1)]
U32 = Annotated[int, Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
Nanoseconds = Annotated[int, Field(ge=0, le=2**63 - 1)]


class WireModel(BaseModel):
    """Lenient about unknown keys, strict about the types of known ones."""

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)


class BindMountMode(IntEnum):
    RO = 0
    RW = 1


class BindMountOrigin(IntEnum):
    HOST = 0
    CONTAINER = 1


class ImageRef(WireModel):
    uri: str = ""
    username: str = ""
    password: str = ""


class BindMount(WireModel):
    src_path: str = ""
    dst_path: str = ""
    mode: U8 = BindMountMode.RO
    origin: U8 = BindMountOrigin.HOST


class BandwidthLimits(WireModel):
    rate: U64 = 0
    burst: U64 = 0


class CPULimits(WireModel):
    weight: U64 = 0
    limit_in_shares: U64 = 0


class DiskLimits(WireModel):
    inode_soft: U64 = 0
    inode_hard: U64 = 0
    byte_soft: U64 = 0
    byte_hard: U64 = 0
    scope: U8 = 0


class MemoryLimits(WireModel):
    limit_in_bytes: U64 = 0


class PidLimits(WireModel):
    max: U64 = 0


class Limits(WireModel):
    bandwidth_limits: BandwidthLimits = BandwidthLimits()
    cpu_limits: CPULimits = CPULimits()
    disk_limits: DiskLimits = DiskLimits()
    memory_limits: MemoryLimits = MemoryLimits()
    pid_limits: PidLimits = PidLimits()


class PortRange(WireModel):
    start: U16 = 0
    end: U16 = 0


class IPRange(WireModel):
    start: str = ""
    end: str = ""


class ICMPControl(WireModel):
    type: U8 = 0
    code: U8 | None = None


class NetOutRule(WireModel):
    protocol: U8 = 0
    networks: list[IPRange] | None = None
    ports: list[PortRange] | None = None
    icmps: ICMPControl | None = None
    log: bool = False


class NetIn(WireModel):
    handle: str = ""
    host_port: U32 = 0
    container_port: U32 = 0


class ContainerSpec(WireModel):
    handle: str = ""
    grace_time: Nanoseconds = 0
    rootfs: str = ""
    image: ImageRef = ImageRef()
    bind_mounts: list[BindMount] | None = None
    network: str = ""
    properties: dict[str, str] | None = None
    env: list[str] | None = None
    privileged: bool = False
    limits: Limits = Limits()
    netout_rules: list[NetOutRule] | None = None
    netin: list[NetIn] | None = None


class ResourceLimits(WireModel):
    as_: U64 | None = Field(default=None, alias="as")
    core: U64 | None = None
    cpu: U64 | None = None
    data: U64 | None = None
    fsize: U64 | None = None
    locks: U64 | None = None
    memlock: U64 | None = None
    msgqueue: U64 | None = None
    nice: U64 | None = None
    nofile: U64 | None = None
    nproc: U64 | None = None
    rss: U64 | None = None
    rtprio: U64 | None = None
    sigpending: U64 | None = None
    stack: U64 | None = None


class WindowSize(WireModel):
    columns: U16 = 0
    rows: U16 = 0


class TTYSpec(WireModel):
    window_size: WindowSize | None = None


class ProcessLimits(WireModel):
    cpu_limits: CPULimits = CPULimits()
    memory_limits: MemoryLimits = MemoryLimits()
    pid_limits: PidLimits = PidLimits()


class ProcessSpec(WireModel):
    id: str = ""
    path: str = ""
    args: list[str] | None = None
    env: list[str] | None = None
    dir: str = ""
    user: str = ""
    rlimits: ResourceLimits = ResourceLimits()
    limits: ProcessLimits | None = None
    tty: TTYSpec | None = None
    image: ImageRef = ImageRef()
    bind_mounts: list[BindMount] | None = None


class ProcessPayload(WireModel):
    """One newline-delimited message on a process control connection, either way."""

    process_id: str = ""
    stream_id: str = ""
    source: U8 | None = None
    data: str | None = None
    exit_status: int | None = None
    error: str | None = None
    tty: TTYSpec | None = None
    signal: U8 | None = None


class StopRequest(WireModel):
    kill: bool = False


class PropertyValue(WireModel):
    value: str = ""


class PortMapping(WireModel):
    host_port: U32 = Field(0, serialization_alias="HostPort")
    container_port: U32 = Field(0, serialization_alias="ContainerPort")


class ContainerInfo(WireModel):
    state: str = Field("", serialization_alias="State")
    events: list[str] | None = Field(None, serialization_alias="Events")
    host_ip: str = Field("", serialization_alias="HostIP")
    container_ip: str = Field("", serialization_alias="ContainerIP")
    container_ipv6: str = Field("", serialization_alias="ContainerIPv6")
    external_ip: str = Field("", serialization_alias="ExternalIP")
    container_path: str = Field("", serialization_alias="ContainerPath")
    process_ids: list[str] | None = Field(None, serialization_alias="ProcessIDs")
    properties: dict[str, str] | None = Field(None, serialization_alias="Properties")
    mapped_ports: list[PortMapping] | None = Field(None, serialization_alias="MappedPorts")


class ContainerMemoryStat(WireModel):
    """Memory use as Guardian reports it: snake_case keys except ``TotalUsageTowardLimit``."""

    active_anon: U64 = 0
    active_file: U64 = 0
    cache: U64 = 0
    hierarchical_memory_limit: U64 = 0
    inactive_anon: U64 = 0
    inactive_file: U64 = 0
    mapped_file: U64 = 0
    pgfault: U64 = 0
    pgmajfault: U64 = 0
    pgpgin: U64 = 0
    pgpgout: U64 = 0
    rss: U64 = 0
    total_active_anon: U64 = 0
    total_active_file: U64 = 0
    total_cache: U64 = 0
    total_inactive_anon: U64 = 0
    total_inactive_file: U64 = 0
    total_mapped_file: U64 = 0
    total_pgfault: U64 = 0
    total_pgmajfault: U64 = 0
    total_pgpgin: U64 = 0
    total_pgpgout: U64 = 0
    total_rss: U64 = 0
    total_unevictable: U64 = 0
    unevictable: U64 = 0
    swap: U64 = 0
    hierarchical_memsw_limit: U64 = 0
    total_swap: U64 = 0
    total_usage_toward_limit: U64 = Field(0, serialization_alias="TotalUsageTowardLimit")
    anon: U64 = 0
    file: U64 = 0
    swapcached: U64 = 0


class ContainerCPUStat(WireModel):
    usage: U64 = Field(0, serialization_alias="Usage")
    user: U64 = Field(0, serialization_alias="User")
    system: U64 = Field(0, serialization_alias="System")


class ContainerDiskStat(WireModel):
    total_bytes_used: U64 = Field(0, serialization_alias="TotalBytesUsed")
    total_inodes_used: U64 = Field(0, serialization_alias="TotalInodesUsed")
    exclusive_bytes_used: U64 = Field(0, serialization_alias="ExclusiveBytesUsed")
    exclusive_inodes_used: U64 = Field(0, serialization_alias="ExclusiveInodesUsed")


class ContainerNetworkStat(WireModel):
    rx_bytes: U64 = Field(0, serialization_alias="RxBytes")
    tx_bytes: U64 = Field(0, serialization_alias="TxBytes")


class ContainerPidStat(WireModel):
    current: U64 = Field(0, serialization_alias="Current")
    max: U64 = Field(0, serialization_alias="Max")


class Metrics(WireModel):
    """A container's resource use; top-level keys are PascalCase (no JSON tags in Go)."""

    memory_stat: ContainerMemoryStat = Field(ContainerMemoryStat(), serialization_alias="MemoryStat")
    cpu_stat: ContainerCPUStat = Field(ContainerCPUStat(), serialization_alias="CPUStat")
    disk_stat: ContainerDiskStat = Field(ContainerDiskStat(), serialization_alias="DiskStat")
    network_stat: ContainerNetworkStat | None = Field(None, serialization_alias="NetworkStat")
    pid_stat: ContainerPidStat = Field(ContainerPidStat(), serialization_alias="PidStat")
    age: Nanoseconds = Field(0, serialization_alias="Age")
    cpu_entitlement: U64 = Field(0, serialization_alias="CPUEntitlement")


class Capacity(WireModel):
    memory_in_bytes: U64 = 0
    disk_in_bytes: U64 = 0
    schedulable_disk_in_bytes: U64 = 0
    max_containers: U64 = 0


def to_wire(model: BaseModel) -> Any:
    """The JSON-ready form of a response model, with Go's key names."""
    return model.model_dump(mode="json", by_alias=True)


def to_wire_omitempty(model: BaseModel) -> Any:
    """As :func:`to_wire`, leaving out zero values as Go's ``omitempty`` tags do."""
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)

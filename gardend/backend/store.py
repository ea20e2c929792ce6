"""Container records, kept in containerd itself so that gardend holds no state of its own.

The handle, grace time and state are labels (visible to ``ctr``); the Garden spec and
the properties are JSON documents in container extensions, because property values of
any size and content must round-trip exactly and labels cap at 4 KiB.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2
from pydantic import BaseModel, ConfigDict

from gardend.containerd.client import RUNC_RUNTIME, SPEC_TYPE_URL, Container, ContainerdClient, json_any
from gardend.models import BindMount, Limits, NetIn, NetOutRule

HANDLE_LABEL = "garden.handle"
GRACE_LABEL = "garden.grace-time"
STATE_LABEL = "garden.state"
MANAGED_FILTER = f'labels."{HANDLE_LABEL}"'
SPEC_EXTENSION = "gardend.spec"
PROPERTIES_EXTENSION = "gardend.properties"
_EXTENSION_TYPE = "gardend.io/json"

STATE_CREATING = "creating"
STATE_CREATED = "created"
STATE_STOPPED = "stopped"

_CONTAINERD_ID = re.compile(r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$")
MAX_CONTAINERD_ID = 76


def containerd_id(handle: str) -> str:
    """containerd's ids are stricter than Garden handles; other handles get a digest id."""
    if len(handle) <= MAX_CONTAINERD_ID and _CONTAINERD_ID.match(handle):
        return handle
    return "gardend-" + hashlib.sha256(handle.encode()).hexdigest()[:40]


class StoredSpec(BaseModel):
    """What gardend must remember of the create request to run and report the container."""

    model_config = ConfigDict(extra="ignore")

    env: list[str] = []
    privileged: bool = False
    limits: Limits = Limits()
    bind_mounts: list[BindMount] = []
    rootfs: str = ""
    lower: str = ""
    network: str = ""
    netin: list[NetIn] = []
    netout_rules: list[NetOutRule] = []
    created_at_ns: int = 0
    subnet: str = ""
    container_ip: str = ""


@dataclass
class ContainerRecord:
    handle: str
    id: str
    spec: StoredSpec
    properties: dict[str, str] = field(default_factory=dict)
    grace_time_ns: int = 0
    state: str = STATE_CREATING
    events: list[str] = field(default_factory=list)
    """What happened to the container (such as OOM kills) since gardend started."""

    @property
    def age_ns(self) -> int:
        return max(1, time.time_ns() - self.spec.created_at_ns)


def _json_extension(value: Any) -> any_pb2.Any:
    return any_pb2.Any(type_url=_EXTENSION_TYPE, value=json.dumps(value, ensure_ascii=False).encode())


def _labels(record: ContainerRecord) -> dict[str, str]:
    return {HANDLE_LABEL: record.handle, GRACE_LABEL: str(record.grace_time_ns), STATE_LABEL: record.state}


def from_containerd(c: Container) -> ContainerRecord:
    spec = StoredSpec.model_validate_json(c.extensions[SPEC_EXTENSION].value or b"{}")
    properties = json.loads(c.extensions[PROPERTIES_EXTENSION].value or b"{}")
    return ContainerRecord(
        handle=c.labels[HANDLE_LABEL],
        id=c.id,
        spec=spec,
        properties=properties,
        grace_time_ns=int(c.labels.get(GRACE_LABEL, "0") or 0),
        state=c.labels.get(STATE_LABEL, STATE_CREATED),
    )


class ContainerStore:
    """Writes records through to containerd; reads come from memory, loaded at start."""

    def __init__(self, client: ContainerdClient) -> None:
        self.client = client

    async def load(self) -> list[ContainerRecord]:
        return [from_containerd(c) for c in await self.client.list_containers(MANAGED_FILTER)]

    async def create(self, record: ContainerRecord, oci_spec: dict[str, Any]) -> None:
        container = Container(
            id=record.id,
            labels=_labels(record),
            runtime=Container.Runtime(name=RUNC_RUNTIME),
            spec=json_any(SPEC_TYPE_URL, oci_spec),
            extensions={
                SPEC_EXTENSION: _json_extension(record.spec.model_dump(mode="json")),
                PROPERTIES_EXTENSION: _json_extension(record.properties),
            },
        )
        await self.client.create_container(container)

    async def save_labels(self, record: ContainerRecord) -> None:
        labels = _labels(record)
        await self.client.update_container(Container(id=record.id, labels=labels), [f"labels.{key}" for key in labels])

    async def save_properties(self, record: ContainerRecord) -> None:
        container = Container(id=record.id, extensions={PROPERTIES_EXTENSION: _json_extension(record.properties)})
        await self.client.update_container(container, [f"extensions.{PROPERTIES_EXTENSION}"])

    async def save_spec(self, record: ContainerRecord) -> None:
        spec = _json_extension(record.spec.model_dump(mode="json"))
        await self.client.update_container(
            Container(id=record.id, extensions={SPEC_EXTENSION: spec}), [f"extensions.{SPEC_EXTENSION}"]
        )

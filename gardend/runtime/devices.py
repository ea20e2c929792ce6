"""Which device nodes a container may create and use: the devices cgroup and /dev/fuse."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_RULE = re.compile(r"^([acb]) (\*|\d+):(\*|\d+) ([rwm]{1,3})$")


class DeviceRuleError(ValueError):
    pass


@dataclass(frozen=True)
class DeviceRule:
    """One devices-cgroup allow rule; ``None`` major or minor is a wildcard."""

    type: str
    major: int | None
    minor: int | None
    access: str

    @classmethod
    def parse(cls, text: str) -> DeviceRule:
        """A rule as ``gdn --device-cgroup-rule`` takes it, e.g. ``c 10:200 rwm``."""
        m = _RULE.match(text.strip())
        if m is None or len(set(m[4])) != len(m[4]):
            raise DeviceRuleError(
                f"invalid device cgroup rule {text!r}: want TYPE MAJOR:MINOR ACCESS, e.g. 'c 1:3 rwm'"
            )
        kind, major, minor, access = m.groups()
        return cls(kind, None if major == "*" else int(major), None if minor == "*" else int(minor), access)

    def covers(self, other: DeviceRule) -> bool:
        """Whether this rule names the same device(s) as ``other``, so it replaces it."""
        if self.type != other.type and self.type != "a":
            return False
        wildcard = self.major is None and self.minor is None
        return wildcard or (self.major, self.minor) == (other.major, other.minor)

    def oci(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"allow": True, "type": self.type, "access": self.access}
        if self.major is not None:
            rule["major"] = self.major
        if self.minor is not None:
            rule["minor"] = self.minor
        return rule


FUSE = DeviceRule("c", 10, 229, "rwm")
STANDARD = (
    DeviceRule("c", None, None, "m"),
    DeviceRule("b", None, None, "m"),
    DeviceRule("c", 1, 3, "rwm"),  # /dev/null
    DeviceRule("c", 1, 5, "rwm"),  # /dev/zero
    DeviceRule("c", 1, 7, "rwm"),  # /dev/full
    DeviceRule("c", 1, 8, "rwm"),  # /dev/random
    DeviceRule("c", 1, 9, "rwm"),  # /dev/urandom
    DeviceRule("c", 5, 0, "rwm"),  # /dev/tty
    DeviceRule("c", 5, 2, "rwm"),  # /dev/ptmx
    DeviceRule("c", 136, None, "rwm"),  # /dev/pts/*
)
"""What every container may use. Creating nodes ("m") is harmless without read or write."""


def cgroup_rules(privileged: bool, extra: tuple[DeviceRule, ...] = ()) -> list[dict[str, Any]]:
    """OCI ``resources.devices``: deny everything, then allow the standard devices.

    Privileged containers also get FUSE and the server's ``--device-cgroup-rule`` rules,
    which replace the defaults they name, as in Guardian.
    """
    allowed = [*STANDARD, FUSE] if privileged else list(STANDARD)
    if privileged and extra:
        allowed = [*extra, *(d for d in allowed if not any(e.covers(d) for e in extra))]
    return [{"allow": False, "access": "rwm"}, *(d.oci() for d in allowed)]


def device_nodes(privileged: bool) -> list[dict[str, Any]]:
    """OCI ``linux.devices`` beyond runc's defaults: /dev/fuse, for privileged containers only.

    Mounting FUSE needs CAP_SYS_ADMIN, which unprivileged containers never have.
    """
    if not privileged:
        return []
    return [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}]

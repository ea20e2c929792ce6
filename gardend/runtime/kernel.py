"""Host kernel settings that containers at scale need and distribution defaults lack."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("gardend.kernel")

KEYS = Path("/proc/sys/kernel/keys")
MIN_MAXKEYS = 1_000_000
MIN_MAXBYTES = 25_000_000


def ensure_key_quota(keys: Path = KEYS) -> None:
    """Raises the per-user key quota so container creation keeps working.

    runc gives every container a new session keyring owned by the container's root id,
    which for unprivileged containers is one shared non-root host id. The kernel allows a
    non-root id 200 keys, freed only 300 s after use, so a busy host stops creating
    containers after about 200 in five minutes. Sharing the runtime's keyring instead
    (runc's no-new-keyring) would let containers possess the host's keys.
    """
    for name, minimum in (("maxkeys", MIN_MAXKEYS), ("maxbytes", MIN_MAXBYTES)):
        path = keys / name
        current = int(path.read_text())
        if current < minimum:
            path.write_text(f"{minimum}\n")
            log.info(
                "raised kernel key quota", extra={"setting": f"kernel.keys.{name}", "from": current, "to": minimum}
            )

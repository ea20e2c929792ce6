"""The OCI process spec of a Garden process, as runc receives it through containerd's exec."""

from __future__ import annotations

import posixpath
from typing import Any

from gardend.errors import BadRequestError
from gardend.models import ProcessSpec, ResourceLimits
from gardend.runtime.security import SecurityPolicy
from gardend.runtime.spec import DEFAULT_PATH

USER_PATH = "PATH=/usr/local/bin:/usr/bin:/bin"
"""Guardian's PATH for non-root users (root gets DEFAULT_PATH), used when no env sets one."""
DEFAULT_COLUMNS = 80
DEFAULT_ROWS = 24


def environment(container_env: list[str], process_env: list[str], user: str, uid: int) -> list[str]:
    """The container's env with the process's merged over it: a key keeps its first place
    and takes its last value. PATH and USER are added when neither sets them."""
    merged: dict[str, str] = {}
    for entry in [*container_env, *process_env]:
        key, sep, _ = entry.partition("=")
        if not sep or not key:
            raise BadRequestError(f"invalid environment variable {entry!r}: must be KEY=VALUE")
        merged[key] = entry
    if "PATH" not in merged:
        merged["PATH"] = DEFAULT_PATH if uid == 0 else USER_PATH
    if "USER" not in merged:
        merged["USER"] = f"USER={user.partition(':')[0] or 'root'}"
    return list(merged.values())


def working_dir(spec_dir: str, home: str) -> str:
    """The process's cwd: the spec's dir (relative ones from the home), or the home."""
    return posixpath.normpath(posixpath.join(home, spec_dir)) if spec_dir else home


def rlimits(limits: ResourceLimits) -> list[dict[str, Any]]:
    """OCI rlimits for each limit the spec sets; soft and hard are both the given value."""
    values = limits.model_dump(by_alias=True, exclude_none=True)
    return [{"type": f"RLIMIT_{name.upper()}", "hard": value, "soft": value} for name, value in values.items()]


def process_spec(
    spec: ProcessSpec,
    *,
    uid: int,
    gid: int,
    groups: tuple[int, ...],
    cwd: str,
    container_env: list[str],
    privileged: bool,
    policy: SecurityPolicy,
) -> dict[str, Any]:
    if not spec.path:
        raise BadRequestError("process path is empty")
    process: dict[str, Any] = {
        "terminal": spec.tty is not None,
        "user": {"uid": uid, "gid": gid, "additionalGids": list(groups)},
        "args": [spec.path, *(spec.args or [])],
        "env": environment(container_env, spec.env or [], spec.user, uid),
        "cwd": cwd,
        "rlimits": rlimits(spec.rlimits),
        **policy.process(privileged, root=uid == 0),
    }
    if spec.tty is not None:
        size = spec.tty.window_size
        process["consoleSize"] = {
            "height": (size.rows if size else 0) or DEFAULT_ROWS,
            "width": (size.columns if size else 0) or DEFAULT_COLUMNS,
        }
    return process

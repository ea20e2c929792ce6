"""Server configuration, from flags named as ``gdn server``'s and GARDEND_* variables."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gardend.errors import BadRequestError

_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Nanoseconds from a Go duration string (``5m``, ``1h30m``, ``500ms``) or bare seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text) * 10**9
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise BadRequestError(f"invalid duration: {text!r}")
    return sum(int(float(n) * _DURATION_UNITS[u]) for n, u in parts)


@dataclass(frozen=True)
class Config:
    bind_ip: str = "127.0.0.1"
    bind_port: int = 7777
    bind_socket: str = ""
    depot: Path = Path("/var/lib/gardend/depot")
    default_rootfs: str = "/var/lib/gardend/rootfs/busybox"
    default_grace_time_ns: int = 0
    max_containers: int = 0
    containerd_socket: str = ""
    containerd_namespace: str = "garden"
    containerd_bin: str = "containerd"
    containerd_timeout: float = 30.0
    log_level: str = "info"
    uid_map_start: int = 1
    uid_map_length: int = 4294967293
    disable_privileged_containers: bool = False
    cleanup_process_dirs_on_wait: bool = False


def _env_name(flag: str) -> str:
    return "GARDEND_" + flag.lstrip("-").replace("-", "_").upper()


def _flag(parser: argparse.ArgumentParser, name: str, default: str, help_text: str) -> None:
    parser.add_argument(
        name, default=os.environ.get(_env_name(name), default), help=f"{help_text} (env {_env_name(name)})"
    )


def parse_args(argv: Sequence[str] | None = None) -> Config:
    defaults = Config()
    p = argparse.ArgumentParser(prog="gardend", description="Garden API server backed by containerd.")
    _flag(p, "--bind-ip", defaults.bind_ip, "IP address to listen on")
    _flag(p, "--bind-port", str(defaults.bind_port), "TCP port to listen on")
    _flag(p, "--bind-socket", "", "also listen on this unix socket")
    _flag(p, "--depot", str(defaults.depot), "directory for container state and the embedded containerd")
    _flag(p, "--default-rootfs", defaults.default_rootfs, "rootfs directory for containers that name none")
    _flag(p, "--default-grace-time", "0", "grace time for containers that set none (Go duration; 0 = never reap)")
    _flag(p, "--max-containers", "0", "maximum number of containers (0 = no limit)")
    _flag(p, "--containerd-socket", "", "use this containerd instead of starting a private one")
    _flag(p, "--containerd-namespace", defaults.containerd_namespace, "containerd namespace for containers")
    _flag(p, "--containerd-bin", defaults.containerd_bin, "containerd binary for the private containerd")
    _flag(p, "--log-level", defaults.log_level, "debug, info, warning or error")
    _flag(p, "--uid-map-start", str(defaults.uid_map_start), "first host id mapped 1:1 into unprivileged containers")
    _flag(p, "--uid-map-length", str(defaults.uid_map_length), "number of ids mapped 1:1 into unprivileged containers")
    p.add_argument(
        "--disable-privileged-containers",
        action="store_true",
        default=os.environ.get("GARDEND_DISABLE_PRIVILEGED_CONTAINERS", "") not in ("", "0", "false"),
        help="refuse to create privileged containers",
    )
    p.add_argument(
        "--cleanup-process-dirs-on-wait",
        action="store_true",
        default=os.environ.get("GARDEND_CLEANUP_PROCESS_DIRS_ON_WAIT", "") not in ("", "0", "false"),
        help="forget a process once its exit status has been sent (default: keep it until destroy)",
    )
    a = p.parse_args(argv)
    try:
        grace = parse_duration(a.default_grace_time)
        port, max_containers = int(a.bind_port), int(a.max_containers)
        uid_start, uid_length = int(a.uid_map_start), int(a.uid_map_length)
    except (BadRequestError, ValueError) as e:
        p.error(str(e))
    return Config(
        bind_ip=a.bind_ip,
        bind_port=port,
        bind_socket=a.bind_socket,
        depot=Path(a.depot),
        default_rootfs=a.default_rootfs,
        default_grace_time_ns=grace,
        max_containers=max_containers,
        containerd_socket=a.containerd_socket,
        containerd_namespace=a.containerd_namespace,
        containerd_bin=a.containerd_bin,
        log_level=a.log_level,
        uid_map_start=uid_start,
        uid_map_length=uid_length,
        disable_privileged_containers=a.disable_privileged_containers,
        cleanup_process_dirs_on_wait=a.cleanup_process_dirs_on_wait,
    )

"""Server configuration, from flags named as ``gdn server``'s and GARDEND_* variables."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gardend.errors import BadRequestError
from gardend.runtime.devices import DeviceRule
from gardend.runtime.spec import MAXIMUS

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
    bind_socket_mode: int = 0o600
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    debug_bind_ip: str = ""
    debug_bind_port: int = 17013
    depot: Path = Path("/var/lib/gardend/depot")
    default_rootfs: str = "/var/lib/gardend/rootfs/busybox"
    default_grace_time_ns: int = 0
    max_containers: int = 0
    cpu_quota_per_share: int = 0
    containerd_socket: str = ""
    containerd_namespace: str = "garden"
    containerd_bin: str = "containerd"
    containerd_timeout: float = 30.0
    log_level: str = "info"
    uid_map_start: int = 1
    uid_map_length: int = MAXIMUS - 1
    disable_privileged_containers: bool = False
    no_new_privileges: bool = False
    device_cgroup_rules: tuple[DeviceRule, ...] = ()
    network_pool: str = "10.254.0.0/22"
    disable_networking: bool = False
    deny_networks: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()
    allow_host_access: bool = False
    dns_servers: tuple[str, ...] = ()
    additional_dns_servers: tuple[str, ...] = ()
    external_ip: str = ""
    port_pool_start: int = 60000
    port_pool_size: int = 5000
    cleanup_process_dirs_on_wait: bool = False


def _env_name(flag: str) -> str:
    return "GARDEND_" + flag.lstrip("-").replace("-", "_").upper()


def _flag(parser: argparse.ArgumentParser, name: str, default: str, help_text: str) -> None:
    parser.add_argument(
        name, default=os.environ.get(_env_name(name), default), help=f"{help_text} (env {_env_name(name)})"
    )


def _bool_flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(
        name,
        action="store_true",
        default=os.environ.get(_env_name(name), "") not in ("", "0", "false"),
        help=f"{help_text} (env {_env_name(name)})",
    )


def _list_flag(parser: argparse.ArgumentParser, names: Sequence[str], help_text: str) -> None:
    """Repeatable, as gdn's; the variable holds a comma-separated list."""
    env = os.environ.get(_env_name(names[0]), "")
    default = [v for v in env.split(",") if v]
    parser.add_argument(*names, action="append", default=default, help=f"{help_text} (env {_env_name(names[0])})")


def _id_map(start_text: str, length_text: str) -> tuple[int, int]:
    """gdn's --uid-map-start/--uid-map-length; the length defaults to every id below container root's."""
    start = int(start_text)
    length = int(length_text) if length_text else MAXIMUS - start
    if start < 1 or length < 1 or start + length > MAXIMUS:
        raise ValueError(f"uid map {start}+{length} must lie within 1..{MAXIMUS - 1}: {MAXIMUS} is container root")
    return start, length


def _tls_files(cert: str, key: str, ca: str) -> None:
    if (cert or key or ca) and not (cert and key and ca):
        raise ValueError("TLS needs --tls-cert, --tls-key and --tls-ca (clients must present a certificate)")


def parse_args(argv: Sequence[str] | None = None) -> Config:
    defaults = Config()
    p = argparse.ArgumentParser(prog="gardend", description="Garden API server backed by containerd.")
    _flag(p, "--bind-ip", defaults.bind_ip, "IP address to listen on")
    _flag(p, "--bind-port", str(defaults.bind_port), "TCP port to listen on")
    _flag(p, "--bind-socket", "", "also listen on this unix socket")
    _flag(p, "--bind-socket-mode", "0600", "file mode of the unix socket (octal)")
    _flag(p, "--tls-cert", "", "serve TCP over TLS with this certificate (PEM)")
    _flag(p, "--tls-key", "", "private key of --tls-cert (PEM)")
    _flag(p, "--tls-ca", "", "CA certificates (PEM) that must have signed every client's certificate")
    _flag(p, "--debug-bind-ip", "", "serve /debug/vars on this IP (off when empty)")
    _flag(p, "--debug-bind-port", str(defaults.debug_bind_port), "port of the debug listener")
    _flag(p, "--depot", str(defaults.depot), "directory for container state and the embedded containerd")
    _flag(p, "--default-rootfs", defaults.default_rootfs, "rootfs directory for containers that name none")
    _flag(p, "--default-grace-time", "0", "grace time for containers that set none (Go duration; 0 = never reap)")
    _flag(p, "--max-containers", "0", "maximum number of containers (0 = no limit)")
    _flag(p, "--cpu-quota-per-share", "0", "CPU quota (µs per 100 ms) per CPU share of a container (0 = no quota)")
    _flag(p, "--containerd-socket", "", "use this containerd instead of starting a private one")
    _flag(p, "--containerd-namespace", defaults.containerd_namespace, "containerd namespace for containers")
    _flag(p, "--containerd-bin", defaults.containerd_bin, "containerd binary for the private containerd")
    _flag(p, "--log-level", defaults.log_level, "debug, info, warning or error")
    _flag(p, "--uid-map-start", str(defaults.uid_map_start), "first host id mapped 1:1 into unprivileged containers")
    _flag(p, "--uid-map-length", "", "number of ids mapped 1:1 into unprivileged containers (default: all)")
    _bool_flag(p, "--disable-privileged-containers", "refuse to create privileged containers")
    _bool_flag(p, "--no-new-privileges", "set no_new_privileges on unprivileged containers' processes")
    _list_flag(p, ["--device-cgroup-rule"], "extra devices cgroup rule for privileged containers, e.g. 'c 10:200 rwm'")
    _flag(p, "--network-pool", defaults.network_pool, "IPv4 range from which container subnets are allocated")
    _bool_flag(p, "--disable-networking", "give containers only a loopback interface")
    _list_flag(p, ["--deny-network", "--deny-networks"], "CIDR containers may not reach unless a NetOut rule allows")
    _list_flag(p, ["--allow-network", "--allow-networks"], "CIDR containers may reach even if denied above")
    _bool_flag(p, "--allow-host-access", "let containers connect to the host's own addresses")
    _list_flag(p, ["--dns-server"], "nameserver for containers, replacing the host's")
    _list_flag(p, ["--additional-dns-server"], "nameserver for containers, added to the host's")
    _flag(p, "--external-ip", "", "address NetIn ports are reported on (default: the default route's source)")
    _flag(p, "--port-pool-start", str(defaults.port_pool_start), "first host port NetIn picks from")
    _flag(p, "--port-pool-size", str(defaults.port_pool_size), "number of host ports NetIn picks from")
    _bool_flag(
        p, "--cleanup-process-dirs-on-wait", "forget a process once its exit status is sent (default: at destroy)"
    )
    a = p.parse_args(argv)
    try:
        grace = parse_duration(a.default_grace_time)
        port, debug_port, max_containers = int(a.bind_port), int(a.debug_bind_port), int(a.max_containers)
        uid_start, uid_length = _id_map(a.uid_map_start, a.uid_map_length)
        port_start, port_size = int(a.port_pool_start), int(a.port_pool_size)
        cpu_quota_per_share = int(a.cpu_quota_per_share)
        socket_mode = int(a.bind_socket_mode, 8)
        _tls_files(a.tls_cert, a.tls_key, a.tls_ca)
        device_rules = tuple(DeviceRule.parse(r) for r in a.device_cgroup_rule)
    except (BadRequestError, ValueError) as e:
        p.error(str(e))
    return Config(
        bind_ip=a.bind_ip,
        bind_port=port,
        bind_socket=a.bind_socket,
        bind_socket_mode=socket_mode,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        tls_ca=a.tls_ca,
        debug_bind_ip=a.debug_bind_ip,
        debug_bind_port=debug_port,
        depot=Path(a.depot),
        default_rootfs=a.default_rootfs,
        default_grace_time_ns=grace,
        max_containers=max_containers,
        cpu_quota_per_share=cpu_quota_per_share,
        containerd_socket=a.containerd_socket,
        containerd_namespace=a.containerd_namespace,
        containerd_bin=a.containerd_bin,
        log_level=a.log_level,
        uid_map_start=uid_start,
        uid_map_length=uid_length,
        disable_privileged_containers=a.disable_privileged_containers,
        no_new_privileges=a.no_new_privileges,
        device_cgroup_rules=device_rules,
        network_pool=a.network_pool,
        disable_networking=a.disable_networking,
        deny_networks=tuple(a.deny_network),
        allow_networks=tuple(a.allow_network),
        allow_host_access=a.allow_host_access,
        dns_servers=tuple(a.dns_server),
        additional_dns_servers=tuple(a.additional_dns_server),
        external_ip=a.external_ip,
        port_pool_start=port_start,
        port_pool_size=port_size,
        cleanup_process_dirs_on_wait=a.cleanup_process_dirs_on_wait,
    )

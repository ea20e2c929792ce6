"""Confinement through gardend, a real containerd and real runc: user namespace, capabilities,
seccomp, masked paths, devices, bind mounts, and the server's own listeners."""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from gardend import server as gardend_server
from gardend.backend import bindmounts
from gardend.backend.store import containerd_id
from gardend.client import GardenClient, GardenClientError
from gardend.config import parse_args
from gardend.containerd import errors as cerr
from gardend.errors import GardenError
from gardend.listeners import ListenerError
from gardend.models import BindMount, BindMountOrigin, ContainerSpec
from gardend.runtime import capabilities
from gardend.runtime.devices import DeviceRule, cgroup_rules
from gardend.runtime.spec import MAXIMUS
from tests import inside
from tests.conftest import CreateFn, make_config

RO, RW = 0, 1
HOST, CONTAINER = 0, 1


def status_field(status: str, name: str) -> str:
    match = re.search(rf"^{name}:\s+(\S+)$", status, re.MULTILINE)
    assert match, f"{name} missing from {status!r}"
    return match.group(1)


def cap_mask(names: list[str]) -> str:
    return f"{sum(1 << capabilities.CAPABILITIES.index(n) for n in names):016x}"


def upper_dir(srv: gardend_server.Server, handle: str) -> Path:
    return srv.garden.containers.containers_dir / containerd_id(handle) / "upper"


async def init_pid(srv: gardend_server.Server, handle: str) -> int:
    return int((await srv.client.get_task(containerd_id(handle))).pid)


# Unprivileged containers


async def test_unprivileged_process_sees_guardians_uid_and_gid_maps(
    gardend: gardend_server.Server, container: str
) -> None:
    for kind in ("uid", "gid"):
        result = await inside.run(gardend, container, "cat", f"/proc/self/{kind}_map")
        assert [line.split() for line in result.output.splitlines()] == [
            ["0", "4294967294", "1"],
            ["1", "1", "4294967293"],
        ]


async def test_file_created_by_unprivileged_root_belongs_to_maximus_on_the_host(
    gardend: gardend_server.Server, container: str
) -> None:
    assert (await inside.run(gardend, container, "touch", "/root/potato")).exit_code == 0
    st = (upper_dir(gardend, container) / "root" / "potato").stat()
    assert (st.st_uid, st.st_gid) == (MAXIMUS, MAXIMUS)


async def test_unprivileged_root_cannot_mknod_or_mount(gardend: gardend_server.Server, container: str) -> None:
    mknod = await inside.run(gardend, container, "mknod", "/tmp/mem", "c", "1", "1")
    assert mknod.exit_code != 0 and "Operation not permitted" in mknod.output
    mount = await inside.run(gardend, container, "mount", "-t", "tmpfs", "tmpfs", "/tmp")
    assert mount.exit_code != 0 and "permission denied" in mount.output
    remount = await inside.run(gardend, container, "mount", "-o", "remount,rw", "/sys")
    assert remount.exit_code != 0


async def test_unprivileged_container_sees_only_its_own_processes(
    gardend: gardend_server.Server, container: str
) -> None:
    result = await inside.run(gardend, container, "sh", "-c", "cat /proc/1/comm; ls -d /proc/[0-9]*")
    comm, *pids = result.output.split()
    assert comm == "garden-init"
    assert len(pids) <= 3  # garden-init, sh and ls
    host_pids = [p for p in os.listdir("/proc") if p.isdigit()]
    assert len(host_pids) > len(pids)


async def test_unprivileged_mounts_are_as_garden_clients_expect(gardend: gardend_server.Server, container: str) -> None:
    mounts = (await inside.run(gardend, container, "cat", "/proc/mounts")).output
    for pattern in (
        r"^tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime",
        r"^sysfs /sys sysfs ro,",
        r"^devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=666",
        r"^cgroup /sys/fs/cgroup/devices cgroup ro,",
    ):
        assert re.search(pattern, mounts, re.MULTILINE), pattern
    shm = await inside.run(gardend, container, "stat", "-c", "%a", "/dev/shm")
    assert shm.output.strip() == "1777"


MASKED_FILES = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") if os.path.exists(p)]


async def assert_masked(srv: gardend_server.Server, handle: str) -> None:
    """Masked files are /dev/null, masked directories empty (for those this kernel has)."""
    assert MASKED_FILES
    result = await inside.run(srv, handle, "stat", "-c", "%F %t,%T", *MASKED_FILES)
    assert result.output.splitlines() == ["character special file 1,3"] * len(MASKED_FILES)
    firmware = await inside.run(srv, handle, "ls", "-A", "/sys/firmware")
    assert (firmware.exit_code, firmware.output) == (0, "")


async def test_masked_and_read_only_proc_paths_refuse_writes(gardend: gardend_server.Server, container: str) -> None:
    await assert_masked(gardend, container)
    for path in ("/proc/sysrq-trigger", "/proc/sys/kernel/hostname", "/sys/kernel/uevent_helper"):
        result = await inside.run(gardend, container, "sh", "-c", f"echo x > {path}")
        assert result.exit_code != 0, path


async def test_unprivileged_capabilities_are_guardians_for_root_and_other_users(
    gardend: gardend_server.Server, container: str
) -> None:
    root = (await inside.run(gardend, container, "cat", "/proc/self/status")).output
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert status_field(root, field) == "00000000a80425fb", field
    assert status_field(root, "CapAmb") == "0000000000000000"
    user = (await inside.run(gardend, container, "cat", "/proc/self/status", uid=1000, gid=1000)).output
    assert status_field(user, "CapInh") == status_field(user, "CapBnd") == "00000000a80425fb"
    assert status_field(user, "CapPrm") == status_field(user, "CapEff") == "0000000000000000"
    init = Path(f"/proc/{await init_pid(gardend, container)}/status").read_text()
    assert status_field(init, "CapEff") == "00000000a80425fb"


async def test_seccomp_filters_every_unprivileged_process_and_refuses_unshare(
    gardend: gardend_server.Server, container: str
) -> None:
    status = (await inside.run(gardend, container, "cat", "/proc/self/status")).output
    assert status_field(status, "Seccomp") == "2"
    result = await inside.run(gardend, container, "unshare", "--user", "whoami")
    assert result.exit_code != 0 and "Operation not permitted" in result.output


CLONE3_PROBE = r"""
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *nothing(void *arg) { return arg; }
int main(void) {
    pthread_t t;
    long r = syscall(435, NULL, 0);
    printf("clone3=%ld errno=%d\n", r, r < 0 ? errno : 0);
    printf("pthread_create=%d\n", pthread_create(&t, NULL, nothing, NULL));
    return 0;
}
"""


@pytest.fixture(scope="module")
def clone3_probe() -> Iterator[str]:
    """A static binary that calls clone3 and creates a thread, built on the host."""
    with tempfile.TemporaryDirectory(prefix="gd-probe-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o755)
        source, binary = Path(tmp) / "probe.c", Path(tmp) / "probe"
        source.write_text(CLONE3_PROBE)
        subprocess.run(["cc", "-static", "-pthread", "-o", str(binary), str(source)], check=True)
        yield str(binary)


async def test_clone3_fails_with_enosys_so_threads_still_start(
    gardend: gardend_server.Server, create: CreateFn, clone3_probe: str
) -> None:
    handle = await create(bind_mounts=[{"src_path": clone3_probe, "dst_path": "/probe", "mode": RO}])
    result = await inside.run(gardend, handle, "/probe")
    assert result.output.split() == ["clone3=-1", "errno=38", "pthread_create=0"]


# Devices


async def test_standard_devices_exist_and_others_cannot_be_opened(
    gardend: gardend_server.Server, create: CreateFn
) -> None:
    for privileged in (False, True):
        handle = await create(privileged=privileged)
        listing = await inside.run(gardend, handle, "stat", "-c", "%n %t,%T", *(
            f"/dev/{d}" for d in ("null", "zero", "full", "random", "urandom", "tty", "pts/ptmx")))  # fmt: skip
        assert listing.output.split("\n")[:-1] == [
            "/dev/null 1,3", "/dev/zero 1,5", "/dev/full 1,7", "/dev/random 1,8", "/dev/urandom 1,9",
            "/dev/tty 5,0", "/dev/pts/ptmx 5,2",
        ]  # fmt: skip
        fuse = await inside.run(gardend, handle, "stat", "-c", "%t,%T %a", "/dev/fuse")
        assert (fuse.output.strip() == "a,e5 666") is privileged
        if privileged:
            mem = await inside.run(gardend, handle, "sh", "-c", "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem")
            assert mem.exit_code != 0 and "Operation not permitted" in mem.output


async def test_devices_cgroup_denies_all_but_the_standard_devices(
    gardend: gardend_server.Server, create: CreateFn
) -> None:
    cgroups = Path("/sys/fs/cgroup/devices")
    if not cgroups.is_dir():
        pytest.skip("no cgroup v1 devices controller")
    for privileged in (False, True):
        handle = await create(privileged=privileged)
        path = f"{gardend.config.containerd_namespace}/{containerd_id(handle)}"
        rules = (cgroups / path / "devices.list").read_text().splitlines()
        assert "a *:* rwm" not in rules
        assert {"c 1:3 rwm", "c 1:9 rwm", "c 136:* rwm"} <= set(rules)
        assert ("c 10:229 rwm" in rules) is privileged


def test_device_cgroup_rules_from_flags_replace_the_defaults_they_name() -> None:
    rule = DeviceRule.parse("c 1:3 r")
    assert rule == DeviceRule("c", 1, 3, "r")
    privileged = cgroup_rules(True, (rule, DeviceRule.parse("b 8:* rw")))
    assert privileged[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"} in privileged
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} not in privileged
    assert {"allow": True, "type": "b", "major": 8, "access": "rw"} in privileged
    assert all(r.get("major") != 8 for r in cgroup_rules(False, (DeviceRule.parse("b 8:* rw"),)))
    for bad in ("c 1:3", "x 1:3 rwm", "c one:3 rwm", "c 1:3 rwx", "c 1:3 rr"):
        with pytest.raises(ValueError):
            DeviceRule.parse(bad)


# Privileged containers


async def test_privileged_root_gets_every_capability_the_host_can_grant_and_no_seccomp(
    gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(privileged=True)
    status = (await inside.run(gardend, handle, "cat", "/proc/self/status")).output
    expected = cap_mask([c for c in capabilities.CAPABILITIES if c in capabilities.host_bounding_set()])
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert status_field(status, field) == expected, field
    assert status_field(status, "Seccomp") == "0"
    user = (await inside.run(gardend, handle, "cat", "/proc/self/status", uid=1000, gid=1000)).output
    non_root = [c for c in capabilities.PRIVILEGED_NON_ROOT if c in capabilities.host_bounding_set()]
    assert status_field(user, "CapBnd") == cap_mask(non_root) == "00000000a82425fb"
    assert status_field(user, "CapEff") == "0000000000000000"


async def test_privileged_mounts_proc_rw_sys_ro_no_cgroups_and_still_masks_paths(
    gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(privileged=True)
    mounts = (await inside.run(gardend, handle, "cat", "/proc/mounts")).output
    assert re.search(r"^proc /proc proc rw", mounts, re.MULTILINE)
    assert re.search(r"^sysfs /sys sysfs ro", mounts, re.MULTILINE)
    assert "cgroup" not in mounts
    await assert_masked(gardend, handle)
    mount = await inside.run(gardend, handle, "mount", "-t", "tmpfs", "tmpfs", "/tmp")
    assert mount.exit_code == 0, mount.output


# Bind mounts


@pytest.fixture
def host_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gd-bind-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o777)
        (Path(tmp) / "hello").write_text("from the host")
        yield Path(tmp)


async def test_read_only_host_bind_mount_cannot_be_written_or_remounted(
    gardend: gardend_server.Server, create: CreateFn, host_dir: Path
) -> None:
    handle = await create(bind_mounts=[{"src_path": str(host_dir), "dst_path": "/mnt/ro", "mode": RO}])
    assert (await inside.run(gardend, handle, "cat", "/mnt/ro/hello")).output == "from the host"
    touch = await inside.run(gardend, handle, "touch", "/mnt/ro/new")
    assert touch.exit_code != 0 and "Read-only file system" in touch.output
    remount = await inside.run(gardend, handle, "sh", "-c", "mount -o remount,rw /mnt/ro && touch /mnt/ro/new")
    assert remount.exit_code != 0
    assert not (host_dir / "new").exists()


async def test_read_write_host_bind_mount_writes_as_the_mapped_root(
    gardend: gardend_server.Server, create: CreateFn, host_dir: Path
) -> None:
    handle = await create(bind_mounts=[{"src_path": str(host_dir), "dst_path": "/mnt/rw", "mode": RW}])
    assert (await inside.run(gardend, handle, "touch", "/mnt/rw/new")).exit_code == 0
    assert (host_dir / "new").stat().st_uid == MAXIMUS


@pytest.fixture(scope="module")
def hostile_rootfs() -> Iterator[Path]:
    """An image whose symlinks point at host paths if followed on the host."""
    with tempfile.TemporaryDirectory(prefix="gd-hostile-", dir="/tmp") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        (root / "etc").mkdir()
        (root / "etc" / "marker").write_text("image")
        (root / "tmp").mkdir()
        (root / "abs").symlink_to("/etc")
        (root / "rel").symlink_to("../../../../../../../../etc")
        (root / "gone").symlink_to("/var/lib")
        os.chown(root / "etc" / "marker", 1000, 1001)
        yield root


async def test_container_origin_bind_mount_resolves_symlinks_inside_the_image(
    gardend: gardend_server.Server, create: CreateFn, hostile_rootfs: Path
) -> None:
    handle = await create(
        rootfs=str(hostile_rootfs),
        bind_mounts=[
            {"src_path": "/abs", "dst_path": "/mnt/abs", "origin": CONTAINER},
            {"src_path": "/rel", "dst_path": "/mnt/rel", "origin": CONTAINER, "mode": RW},
        ],
    )
    root = Path(f"/proc/{await init_pid(gardend, handle)}/root")
    listing = os.listdir(root / "mnt" / "abs")
    assert "marker" in listing and "passwd" not in listing
    assert (root / "mnt" / "rel" / "marker").read_text() == "image"


async def test_bind_mount_source_missing_in_the_container_is_a_clear_error(
    client: GardenClient, hostile_rootfs: Path
) -> None:
    for src in ("/no/such/dir", "/gone"):
        with pytest.raises(GardenClientError) as e:
            await client.create(
                rootfs=str(hostile_rootfs), bind_mounts=[{"src_path": src, "dst_path": "/mnt", "origin": CONTAINER}]
            )
        assert e.value.status == 400
        assert e.value.message == f"bind mount source does not exist in the container: {src}"


async def test_restart_does_not_follow_a_bind_source_the_container_replaced_with_a_symlink(
    depot: Path, hostile_rootfs: Path
) -> None:
    config = make_config(depot / "symlink-restart")
    srv = await gardend_server.start(config)
    try:
        spec = ContainerSpec.model_validate(
            {"rootfs": str(hostile_rootfs), "bind_mounts": [{"src_path": "/etc", "dst_path": "/mnt", "origin": 1}]}
        )
        handle = await srv.garden.create(spec)
        pid = await init_pid(srv, handle)
        await srv.close()
        os.kill(pid, 9)
        upper = upper_dir(srv, handle)
        shutil.rmtree(upper / "etc")
        (upper / "etc").symlink_to("/usr")
        srv = await gardend_server.start(config)
        with pytest.raises(cerr.NotFound):
            await srv.client.get_task(containerd_id(handle))
        await srv.garden.destroy(handle)
    finally:
        await srv.close()


async def test_restart_refuses_a_container_origin_source_replaced_by_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dir").symlink_to("/etc")
    ok = BindMount(src_path="/data", dst_path="/mnt", origin=BindMountOrigin.CONTAINER)
    await bindmounts.check_container_sources([ok], tmp_path)
    bad = BindMount(src_path="/data/dir/sub", dst_path="/mnt", origin=BindMountOrigin.CONTAINER)
    with pytest.raises(GardenError, match="symlink"):
        await bindmounts.check_container_sources([bad], tmp_path)
    host = BindMount(src_path="/data/dir/sub", dst_path="/mnt", origin=BindMountOrigin.HOST)
    await bindmounts.check_container_sources([host], tmp_path)


# A hardened server: TLS with client certificates, a unix socket, no privileged containers,
# no_new_privileges and its own id range. It shares the session's containerd.


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(directory: Path, name: str, ca: str, san: str = "") -> None:
    """``name``.crt and ``name``.key signed by ``ca``.crt/``ca``.key."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)  # fmt: skip
    ext = directory / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "1", "-extfile", ext.name, "-out", f"{name}.crt", cwd=directory)  # fmt: skip


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=directory)  # fmt: skip


@pytest.fixture(scope="module")
def pki() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gd-pki-") as tmp:
        d = Path(tmp)
        make_ca(d, "ca")
        make_ca(d, "rogue-ca")
        issue(d, "server", "ca", san="IP:127.0.0.1")
        issue(d, "worker", "ca")
        issue(d, "intruder", "rogue-ca")
        yield d


@pytest.fixture(scope="module")
async def hardened(depot: Path, pki: Path, gardend: gardend_server.Server) -> AsyncIterator[gardend_server.Server]:
    assert gardend.daemon is not None
    config = make_config(
        depot / "hardened",
        containerd_socket=gardend.daemon.socket,
        tls_cert=str(pki / "server.crt"),
        tls_key=str(pki / "server.key"),
        tls_ca=str(pki / "ca.crt"),
        bind_socket=str(depot / "hardened.sock"),
        bind_socket_mode=0o660,
        disable_privileged_containers=True,
        no_new_privileges=True,
        uid_map_start=100000,
        uid_map_length=65536,
    )
    srv = await gardend_server.start(config)
    yield srv
    for handle in srv.garden.list_handles({"garden.state": "all"}):
        await srv.garden.destroy(handle)
    await srv.close()


def client_tls(pki: Path, name: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if name:
        ctx.load_cert_chain(str(pki / f"{name}.crt"), str(pki / f"{name}.key"))
    return ctx


async def test_tls_accepts_known_client_certificates_and_rejects_others(
    hardened: gardend_server.Server, pki: Path
) -> None:
    url = f"https://127.0.0.1:{hardened.config.bind_port}/ping"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=client_tls(pki, "worker")) as resp:
            assert resp.status == 200
        for name in (None, "intruder"):
            with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
                async with session.get(url, ssl=client_tls(pki, name)) as resp:
                    await resp.read()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"http://127.0.0.1:{hardened.config.bind_port}/ping") as resp:
                await resp.read()


async def test_unreadable_tls_files_stop_the_server_before_it_starts_anything(depot: Path, pki: Path) -> None:
    config = make_config(
        depot / "bad-tls", tls_cert=str(pki / "server.crt"), tls_key=str(pki / "ca.key"), tls_ca=str(pki / "ca.crt")
    )
    with pytest.raises(ListenerError, match="loading TLS files"):
        await gardend_server.start(config)
    assert not (config.depot / "containerd").exists()


async def test_unix_socket_has_the_configured_mode_and_serves_garden(hardened: gardend_server.Server) -> None:
    path = hardened.config.bind_socket
    assert os.stat(path).st_mode & 0o777 == 0o660
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.startswith(".gardend-sock-")]
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session:
        assert await GardenClient("http://gardend", session).request("GET", "/ping") == {}


async def test_disabled_privileged_containers_are_refused_clearly(hardened: gardend_server.Server) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=hardened.config.bind_socket)) as session:
        with pytest.raises(GardenClientError) as e:
            await GardenClient("http://gardend", session).create(privileged=True)
    assert e.value.status == 400
    assert "privileged container creation is disabled" in e.value.message


async def test_no_new_privileges_applies_to_unprivileged_containers(hardened: gardend_server.Server) -> None:
    handle = await hardened.garden.create(ContainerSpec())
    status = (await inside.run(hardened, handle, "cat", "/proc/self/status")).output
    assert status_field(status, "NoNewPrivs") == "1"
    ping_range = (await inside.run(hardened, handle, "cat", "/proc/sys/net/ipv4/ping_group_range")).output
    assert ping_range.split() == ["1", "65535"]


async def test_custom_id_range_maps_ids_and_shifts_the_shared_rootfs_copy(
    hardened: gardend_server.Server, hostile_rootfs: Path
) -> None:
    handle = await hardened.garden.create(ContainerSpec())
    uid_map = (await inside.run(hardened, handle, "cat", "/proc/self/uid_map")).output
    assert [line.split() for line in uid_map.splitlines()] == [["0", str(MAXIMUS), "1"], ["1", "100000", "65536"]]
    assert (await inside.run(hardened, handle, "touch", "/root/x")).exit_code == 0
    first, second = [await hardened.garden.create(ContainerSpec(rootfs=str(hostile_rootfs))) for _ in range(2)]
    lower = Path(hardened.garden.containers.get(first).spec.lower)
    assert lower == Path(hardened.garden.containers.get(second).spec.lower) != hostile_rootfs
    marker = (lower / "etc" / "marker").stat()
    assert (marker.st_uid, marker.st_gid) == (100999, 101000)
    assert (lower / "etc").stat().st_uid == MAXIMUS


def test_flags_configure_tls_socket_mode_id_map_and_device_rules() -> None:
    config = parse_args(
        ["--uid-map-start", "100000", "--bind-socket-mode", "0660", "--device-cgroup-rule", "c 10:200 rwm",
         "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "a", "--no-new-privileges"]
    )  # fmt: skip
    assert (config.uid_map_start, config.uid_map_length) == (100000, MAXIMUS - 100000)
    assert config.bind_socket_mode == 0o660
    assert config.device_cgroup_rules == (DeviceRule("c", 10, 200, "rwm"),)
    assert config.no_new_privileges and config.tls_ca == "a"
    defaults = parse_args([])
    assert (defaults.bind_ip, defaults.uid_map_start, defaults.uid_map_length) == ("127.0.0.1", 1, 4294967293)
    assert defaults.bind_socket_mode == 0o600 and not defaults.tls_cert
    for bad in (["--tls-cert", "c", "--tls-key", "k"], ["--uid-map-length", str(MAXIMUS)], ["--uid-map-start", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)

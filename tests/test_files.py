"""StreamIn and StreamOut through gardend, a real containerd and real runc.

What a container holds is checked on the host through /proc/PID/root of its init, or by
streaming it back out; nothing here runs processes in the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import stat
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gardend import server as gardend_server
from gardend.backend.store import containerd_id
from gardend.client import GardenClient, GardenClientError
from gardend.files.archive import header_bytes
from tests.conftest import CreateFn

MAXIMUS = 4294967294
ALICE = 1000
BOB = 1001
CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")
MTIME = 1_600_000_000


@dataclass
class Entry:
    """One tar member to build: a file by default, or dir / symlink / hardlink / fifo / device."""

    name: str
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    link: str = ""
    xattrs: dict[str, bytes] | None = None
    device: tuple[int, int] = (0, 0)


def tar_member(e: Entry) -> bytes:
    """One member's header blocks and padded data, as a tar writer emits them."""
    info = tarfile.TarInfo(e.name)
    info.type, info.mode, info.mtime, info.linkname = e.kind, e.mode, MTIME, e.link
    info.devmajor, info.devminor = e.device
    if e.xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in e.xattrs.items()}
    info.size = len(e.data) if e.kind == tarfile.REGTYPE else 0
    return info.tobuf(tarfile.PAX_FORMAT) + e.data + bytes(-info.size % 512)


END_OF_ARCHIVE = bytes(1024)


def tar_of(*entries: Entry) -> bytes:
    return b"".join(tar_member(e) for e in entries) + END_OF_ARCHIVE


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def contents(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


async def init_pid(gardend: gardend_server.Server, handle: str) -> int:
    return int((await gardend.client.get_task(containerd_id(handle))).pid)


async def root_of(gardend: gardend_server.Server, handle: str) -> Path:
    """The container's root as the host sees it."""
    return Path(f"/proc/{await init_pid(gardend, handle)}/root")


async def stream_out(client: GardenClient, handle: str, source: str, user: str = "") -> bytes:
    async with client.stream_out(handle, source, user) as body:
        return await body.read()


async def add_users(client: GardenClient, handle: str) -> None:
    """alice and bob, each with a home only they can write to, as ``adduser -D`` makes."""
    passwd = contents(await stream_out(client, handle, "/etc/passwd"), "passwd")
    group = contents(await stream_out(client, handle, "/etc/group"), "group")
    passwd += f"alice:x:{ALICE}:{ALICE}::/home/alice:/bin/sh\nbob:x:{BOB}:{BOB}::/home/bob:/bin/sh\n".encode()
    group += f"alice:x:{ALICE}:\nbob:x:{BOB}:\n".encode()
    await client.stream_in(handle, "/etc", tar_of(Entry("passwd", passwd), Entry("group", group)))
    for user in ("alice", "bob"):
        await client.stream_in(handle, f"/home/{user}", tar_of(Entry("./", kind=tarfile.DIRTYPE, mode=0o755)), user)


def host_uid(privileged: bool, uid: int) -> int:
    return MAXIMUS if uid == 0 and not privileged else uid


# Round trips


@pytest.mark.parametrize("privileged", [False, True])
async def test_a_tree_round_trips_with_modes_symlinks_hard_links_and_mtimes(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn, privileged: bool
) -> None:
    handle = await create(privileged=privileged)
    archive = tar_of(
        Entry("tree", kind=tarfile.DIRTYPE, mode=0o750),
        Entry("tree/script", b"#!/bin/sh\necho hi\n", mode=0o755),
        Entry("tree/secret", b"s3cret", mode=0o600),
        Entry("tree/sub", kind=tarfile.DIRTYPE, mode=0o555),
        Entry("tree/sub/readme", b"read me", mode=0o444),
        Entry("tree/relative", kind=tarfile.SYMTYPE, link="script"),
        Entry("tree/absolute", kind=tarfile.SYMTYPE, link="/etc/passwd"),
        Entry("tree/hard", kind=tarfile.LNKTYPE, link="tree/script"),
        Entry("tree/empty", kind=tarfile.DIRTYPE, mode=0o700),
        Entry("tree/setuid", b"x", mode=0o4755),
        Entry("tree/" + "long-name-" * 20, b"long", mode=0o644),
    )
    await client.stream_in(handle, "/tmp/dest", archive)

    tree = await root_of(gardend, handle) / "tmp/dest/tree"
    assert stat.S_IMODE(tree.lstat().st_mode) == 0o750
    assert stat.S_IMODE((tree / "sub").lstat().st_mode) == 0o555
    assert stat.S_IMODE((tree / "setuid").lstat().st_mode) == 0o4755
    assert (tree / "sub/readme").read_bytes() == b"read me"
    assert os.readlink(tree / "relative") == "script"
    assert os.readlink(tree / "absolute") == "/etc/passwd"
    assert (tree / "hard").stat().st_ino == (tree / "script").stat().st_ino
    assert (tree / "script").stat().st_nlink == 2
    for path in (tree, tree / "sub", tree / "secret"):
        assert path.lstat().st_mtime == MTIME
        assert path.lstat().st_uid == host_uid(privileged, 0)

    out = members(await stream_out(client, handle, "/tmp/dest/tree"))
    sent = members(archive)
    assert set(out) == set(sent)
    # Sorted walking meets "hard" first, so the roles of the two links swap.
    assert (out["tree/script"].type, out["tree/script"].linkname) == (tarfile.LNKTYPE, "tree/hard")
    assert out["tree/hard"].isreg()
    for name, m in sent.items():
        if name not in ("tree/script", "tree/hard"):
            mode = 0o777 if m.issym() else m.mode
            assert (out[name].type, out[name].mode, out[name].linkname) == (m.type, mode, m.linkname), name
        assert out[name].mtime == MTIME
        assert (out[name].uid, out[name].gid) == (0, 0)
    assert contents(await stream_out(client, handle, "/tmp/dest/tree"), "tree/secret") == b"s3cret"


async def test_sparse_files_from_gnu_tar_keep_their_contents(
    client: GardenClient, gardend: gardend_server.Server, container: str, tmp_path: Path
) -> None:
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.write(b"start")
        f.seek(8 << 20)
        f.write(b"end")
    archive = subprocess.run(
        ["tar", "--sparse", "-C", str(tmp_path), "-cf", "-", "sparse"], check=True, capture_output=True
    ).stdout
    assert len(archive) < 1 << 20

    await client.stream_in(container, "/tmp/sparse", archive)
    assert (await root_of(gardend, container) / "tmp/sparse/sparse").read_bytes() == sparse.read_bytes()


async def test_stream_out_names_entries_as_tar_C_dirname_basename(client: GardenClient, container: str) -> None:
    await client.stream_in(container, "/tmp/outer/inner", tar_of(Entry("some-file", b"body")))

    assert raw_names(await stream_out(client, container, "/tmp/outer/inner")) == ["inner/", "inner/some-file"]
    assert raw_names(await stream_out(client, container, "/tmp/outer/inner/")) == ["./", "./some-file"]
    assert raw_names(await stream_out(client, container, "/tmp/outer/inner/some-file")) == ["some-file"]


def raw_names(data: bytes) -> list[str]:
    """Member names as the headers spell them (Go's reader keeps a directory's trailing /;
    Python's tarfile drops it). Pax headers are skipped."""
    names, offset = [], 0
    while data[offset : offset + 512].strip(b"\0"):
        block = data[offset : offset + 512]
        size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        if block[156:157] not in (b"x", b"g"):
            names.append(block[:100].rstrip(b"\0").decode())
        offset += 512 + -(-size // 512) * 512
    return names


@pytest.mark.parametrize("kind", [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
@pytest.mark.parametrize("name", ["a", "dir/", "x" * 100, "x" * 101, "é"])
@pytest.mark.parametrize("uid", [0, 2**21 - 1, 2**21])
def test_directly_built_headers_are_what_tarfile_writes(kind: bytes, name: str, uid: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, 0o4755, uid, 1000, MTIME
    info.size = 8**11 - 1 if kind == tarfile.REGTYPE else 0
    info.linkname = "" if kind == tarfile.REGTYPE else "target"
    info.devmajor, info.devminor = (4095, 1048575) if kind == tarfile.CHRTYPE else (0, 0)
    assert header_bytes(info) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


async def test_relative_paths_are_relative_to_the_users_home(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await add_users(client, container)
    await client.stream_in(container, ".", tar_of(Entry("some-dir/some-file", b"body")), "alice")

    assert (await root_of(gardend, container) / "home/alice/some-dir/some-file").read_bytes() == b"body"
    out = await stream_out(client, container, "some-dir/", "alice")
    assert contents(out, "./some-file") == b"body"


async def test_stream_in_to_the_root_directory_works(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await client.stream_in(container, "/", tar_of(Entry("./at-root", b"x")))
    assert (await root_of(gardend, container) / "at-root").read_bytes() == b"x"
    assert "./at-root" in members(await stream_out(client, container, "/"))


async def test_xattrs_are_preserved_both_ways(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    xattrs = {"security.capability": CAPABILITY, "user.origin": b"gardend"}
    await client.stream_in(container, "/tmp/x", tar_of(Entry("ping", b"x", mode=0o755, xattrs=xattrs)))

    assert os.getxattr(await root_of(gardend, container) / "tmp/x/ping", "user.origin") == b"gardend"
    out = members(await stream_out(client, container, "/tmp/x/ping"))["ping"]
    assert out.pax_headers["SCHILY.xattr.user.origin"] == "gardend"
    assert out.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == CAPABILITY


# Users and permissions


@pytest.mark.parametrize("privileged", [False, True])
async def test_files_belong_to_the_user_and_a_missing_destination_is_created_for_them(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn, privileged: bool
) -> None:
    handle = await create(privileged=privileged)
    await add_users(client, handle)
    root = await root_of(gardend, handle)

    await client.stream_in(handle, "/home/alice/new/deeper", tar_of(Entry("dir/file", b"a")), "alice")
    await client.stream_in(handle, "/tmp/as-root", tar_of(Entry("file", b"r")))

    for path in ("home/alice/new", "home/alice/new/deeper", "home/alice/new/deeper/dir/file"):
        st = (root / path).lstat()
        assert (st.st_uid, st.st_gid) == (ALICE, ALICE), path
    st = (root / "tmp/as-root/file").lstat()
    assert (st.st_uid, st.st_gid) == (host_uid(privileged, 0), host_uid(privileged, 0))


async def test_a_numeric_user_needs_no_passwd_entry(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await client.stream_in(container, "/tmp/numeric", tar_of(Entry("file", b"n")), "2000:3000")
    st = (await root_of(gardend, container) / "tmp/numeric/file").lstat()
    assert (st.st_uid, st.st_gid) == (2000, 3000)


async def test_a_missing_destination_is_created_even_where_the_user_may_not_write(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await add_users(client, container)
    await client.stream_in(container, "/opt/for-bob", tar_of(Entry("file", b"b")), "bob")
    assert (await root_of(gardend, container) / "opt/for-bob/file").stat().st_uid == BOB


async def test_a_user_without_permission_gets_permission_denied(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await add_users(client, container)
    with pytest.raises(GardenClientError) as err:
        await client.stream_in(container, "/home/alice", tar_of(Entry("./some-dir/some-file", b"x")), "bob")
    assert "Permission denied" in err.value.message
    assert err.value.status == 403
    assert not (await root_of(gardend, container) / "home/alice/some-dir").exists()


async def test_an_unknown_user_is_an_error_streaming_in(client: GardenClient, container: str) -> None:
    with pytest.raises(GardenClientError) as err:
        await client.stream_in(container, "/tmp", tar_of(Entry("f", b"x")), "batman")
    assert "error streaming in" in err.value.message
    assert err.value.status == 400


async def test_stream_out_reads_with_the_users_permissions(client: GardenClient, container: str) -> None:
    await add_users(client, container)
    archive = tar_of(Entry("secret", b"s", mode=0o600), Entry("closed", kind=tarfile.DIRTYPE, mode=0o700))
    await client.stream_in(container, "/tmp/private", archive)
    for source in ("/tmp/private/secret", "/tmp/private/closed"):
        with pytest.raises(GardenClientError) as err:
            await stream_out(client, container, source, "alice")
        assert "Permission denied" in err.value.message
        assert err.value.status == 403


async def test_a_transfer_holds_the_grace_countdown(client: GardenClient, create: CreateFn) -> None:
    handle = await create(grace_time=300_000_000)

    async def slow_body() -> AsyncIterator[bytes]:
        yield tar_member(Entry("first", b"1"))
        await asyncio.sleep(1.0)
        yield tar_of(Entry("second", b"2"))

    await client.stream_in(handle, "/tmp/slow", slow_body())
    assert handle in await client.list()
    assert contents(await stream_out(client, handle, "/tmp/slow/second"), "second") == b"2"


async def test_transfers_work_while_a_process_writes_in_the_container(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    """The process runs through nsenter (the process routes are not what is tested here); it
    lives in the container's pid namespace, so destroying the container ends it."""
    await client.stream_in(container, "/tmp/busy", tar_of(Entry("before", b"b")))
    writer = await asyncio.create_subprocess_exec(
        "nsenter", "-t", str(await init_pid(gardend, container)), "-a",
        "sh", "-c", "while true; do echo line >> /tmp/busy/growing; done",
    )  # fmt: skip
    try:
        for i in range(3):
            await client.stream_in(container, "/tmp/busy", tar_of(Entry(f"during-{i}", bytes(1 << 20))))
            out = members(await stream_out(client, container, "/tmp/busy"))
            assert {"busy/before", f"busy/during-{i}", "busy/growing"} <= set(out)
    finally:
        writer.kill()
        await writer.wait()


# Errors


async def test_a_truncated_tar_is_a_bad_request(client: GardenClient, container: str) -> None:
    archive = tar_of(Entry("./some-temp-dir", kind=tarfile.DIRTYPE), Entry("./some-temp-dir/f", b"x" * 5000))
    for cut in (archive[:10], archive[: 512 * 3 + 100]):
        with pytest.raises(GardenClientError) as err:
            await client.stream_in(container, "/tmp/some-container-dir", cut, "")
        assert err.value.status == 400
        assert "error streaming in" in err.value.message


async def test_garbage_after_a_member_is_a_bad_request(client: GardenClient, container: str) -> None:
    archive = tar_of(Entry("f", b"x"))
    with pytest.raises(GardenClientError) as err:
        await client.stream_in(container, "/tmp", archive[:1024] + b"not a tar header".ljust(512, b"!"))
    assert "invalid tar" in err.value.message


def with_pax(name: str, **pax: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.pax_headers, info.size = pax, 1
    return info.tobuf(tarfile.PAX_FORMAT) + b"x".ljust(512, b"\0") + END_OF_ARCHIVE


@pytest.mark.parametrize(
    "archive",
    [
        pytest.param(b"", id="empty body"),
        pytest.param(with_pax("nul", path="a\0b"), id="NUL in a pax path"),
        pytest.param(with_pax("mtime", mtime="1e300"), id="mtime beyond 64 bits"),
        pytest.param(with_pax("xattr", **{"SCHILY.xattr.user.a\0b": "v"}), id="NUL in an xattr name"),
    ],
)
async def test_malformed_archives_are_bad_requests(client: GardenClient, container: str, archive: bytes) -> None:
    with pytest.raises(GardenClientError) as err:
        await client.stream_in(container, "/tmp/malformed", archive)
    assert err.value.status == 400
    assert err.value.message.startswith("error streaming in: ")


async def test_stream_out_of_a_missing_path_is_not_found(client: GardenClient, container: str) -> None:
    with pytest.raises(GardenClientError) as err:
        await stream_out(client, container, "/does/not/exist")
    assert err.value.status == 404
    assert err.value.message == "error streaming out: /does/not/exist: No such file or directory"


async def test_an_error_within_the_first_megabyte_is_still_an_error_response(
    client: GardenClient, container: str
) -> None:
    await add_users(client, container)
    archive = tar_of(Entry("a-readable", b"r" * 4096), Entry("z-unreadable", b"s", mode=0o600))
    await client.stream_in(container, "/tmp/small-mixed", archive)
    with pytest.raises(GardenClientError) as err:
        await stream_out(client, container, "/tmp/small-mixed", "alice")
    assert err.value.message == "error streaming out: small-mixed/z-unreadable: cannot archive: Permission denied"


async def test_unknown_containers_are_not_found(client: GardenClient) -> None:
    with pytest.raises(GardenClientError) as err:
        await client.stream_in("no-such-handle", "/tmp", tar_of(Entry("f")))
    assert (err.value.type, err.value.body["Handle"]) == ("ContainerNotFoundError", "no-such-handle")
    with pytest.raises(GardenClientError) as err:
        await stream_out(client, "no-such-handle", "/tmp")
    assert err.value.type == "ContainerNotFoundError"


async def test_an_error_after_the_first_byte_aborts_the_stream_out(client: GardenClient, container: str) -> None:
    await add_users(client, container)
    archive = tar_of(Entry("a-readable", b"r" * (2 << 20)), Entry("z-unreadable", b"s", mode=0o600))
    await client.stream_in(container, "/tmp/mixed", archive)
    async with client.stream_out(container, "/tmp/mixed", "alice") as body:
        with pytest.raises(aiohttp.ClientPayloadError):
            await body.read()


# Hostile archives: nothing outside the container may change


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory on the host that archives aim at, with a file they try to overwrite."""
    path = Path(f"/tmp/gardend-victim-{uuid.uuid4().hex[:8]}")
    path.mkdir()
    (path / "victim").write_text("untouched")
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def snapshot(path: Path) -> list[tuple[str, int, int, bytes]]:
    return sorted((p.name, p.lstat().st_mode, p.lstat().st_mtime_ns, p.read_bytes()) for p in path.iterdir())


@pytest.mark.parametrize("privileged", [False, True])
async def test_hostile_archives_change_nothing_outside_the_container(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn, host_dir: Path, privileged: bool
) -> None:
    handle = await create(privileged=privileged)
    before = snapshot(host_dir)
    target = str(host_dir).lstrip("/")
    up = "../" * 12
    attacks = {
        "absolute name": tar_of(Entry(f"{host_dir}/victim", b"pwned")),
        "dot-dot name": tar_of(Entry(f"{up}{target}/victim", b"pwned")),
        "absolute symlink then write through it": tar_of(
            Entry("esc", kind=tarfile.SYMTYPE, link=str(host_dir)), Entry("esc/victim", b"pwned")
        ),
        "relative symlink then write through it": tar_of(
            Entry("esc2", kind=tarfile.SYMTYPE, link=f"{up}{target}"), Entry("esc2/new", b"pwned")
        ),
        "symlink through /proc": tar_of(
            Entry("proc", kind=tarfile.SYMTYPE, link=f"/proc/self/root{host_dir}"), Entry("proc/new2", b"pwned")
        ),
        "symlink through init's root": tar_of(
            Entry("init", kind=tarfile.SYMTYPE, link=f"/proc/1/root{host_dir}"), Entry("init/new3", b"pwned")
        ),
        "absolute hard link": tar_of(
            Entry("hl", kind=tarfile.LNKTYPE, link=f"{host_dir}/victim"), Entry("hl", b"pwned")
        ),
        "dot-dot hard link": tar_of(
            Entry("hl2", kind=tarfile.LNKTYPE, link=f"{up}{target}/victim"), Entry("hl2", b"pwned")
        ),
        "hard link through a symlink": tar_of(
            Entry("rootlink", kind=tarfile.SYMTYPE, link="/"),
            Entry("hl3", kind=tarfile.LNKTYPE, link=f"rootlink/{target}/victim"),
            Entry("hl3", b"pwned"),
        ),
    }
    # The container has its own file at the host file's path: what resolves to it is contained.
    await client.stream_in(handle, "/", tar_of(Entry(f"{target}/victim", b"the container's own")))
    for name, archive in attacks.items():
        with pytest.raises(GardenClientError) if "dot-dot" in name else contextlib.suppress(GardenClientError):
            await client.stream_in(handle, "/tmp/attack", archive)
        assert snapshot(host_dir) == before, name

    root = await root_of(gardend, handle)
    assert (root / "tmp/attack" / target / "victim").read_bytes() == b"pwned"
    assert (root / target / "victim").read_bytes() == b"pwned"
    assert not (root / target / "new2").exists()


async def test_a_symlinked_destination_resolves_inside_the_container(
    client: GardenClient, gardend: gardend_server.Server, container: str, host_dir: Path
) -> None:
    before = snapshot(host_dir)
    await client.stream_in(container, "/tmp", tar_of(Entry("dest-link", kind=tarfile.SYMTYPE, link=str(host_dir))))
    with pytest.raises(GardenClientError) as err:
        await client.stream_in(container, "/tmp/dest-link", tar_of(Entry("victim", b"pwned")))
    assert "No such file or directory" in err.value.message

    await client.stream_in(container, "/", tar_of(Entry(str(host_dir), kind=tarfile.DIRTYPE, mode=0o755)))
    await client.stream_in(container, "/tmp/dest-link", tar_of(Entry("victim", b"pwned")))
    assert snapshot(host_dir) == before
    root = await root_of(gardend, container)
    assert (root / str(host_dir).lstrip("/") / "victim").read_bytes() == b"pwned"


async def test_existing_symlinks_are_replaced_not_written_through(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await client.stream_in(container, "/tmp/pre", tar_of(Entry("link", kind=tarfile.SYMTYPE, link="/etc/passwd")))
    root = await root_of(gardend, container)
    passwd = (root / "etc/passwd").read_bytes()
    await client.stream_in(container, "/tmp/pre", tar_of(Entry("link", b"replaced")))
    assert (root / "etc/passwd").read_bytes() == passwd
    assert not (root / "tmp/pre/link").is_symlink()
    assert (root / "tmp/pre/link").read_bytes() == b"replaced"


async def test_device_nodes_are_refused_in_unprivileged_containers(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    for kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        with pytest.raises(GardenClientError) as err:
            await client.stream_in(container, "/tmp/dev", tar_of(Entry("disk", kind=kind, device=(8, 0))))
        assert err.value.status == 400
        assert "device nodes" in err.value.message
    assert not (await root_of(gardend, container) / "tmp/dev/disk").exists()


async def test_device_nodes_are_created_in_privileged_containers(
    client: GardenClient, gardend: gardend_server.Server, create: CreateFn
) -> None:
    handle = await create(privileged=True)
    await client.stream_in(handle, "/tmp/dev", tar_of(Entry("null", kind=tarfile.CHRTYPE, mode=0o666, device=(1, 3))))
    st = (await root_of(gardend, handle) / "tmp/dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


async def test_fifos_are_created_and_replaced_without_being_opened(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await client.stream_in(container, "/tmp/fifo", tar_of(Entry("pipe", kind=tarfile.FIFOTYPE)))
    path = await root_of(gardend, container) / "tmp/fifo/pipe"
    assert stat.S_ISFIFO(path.lstat().st_mode)
    await client.stream_in(container, "/tmp/fifo", tar_of(Entry("pipe", b"now a file")))
    assert path.read_bytes() == b"now a file"


async def test_a_huge_pax_header_is_refused_without_reading_it(client: GardenClient, container: str) -> None:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 1 << 32
    with pytest.raises(GardenClientError) as err:
        await client.stream_in(container, "/tmp/pax", header.tobuf(tarfile.USTAR_FORMAT) + bytes(4096))
    assert err.value.status == 400


async def test_a_tar_bomb_of_tiny_files_extracts_in_flat_memory(
    client: GardenClient, gardend: gardend_server.Server, container: str, host_dir: Path
) -> None:
    before = snapshot(host_dir)
    count = 20_000

    async def bomb() -> AsyncIterator[bytes]:
        for i in range(0, count, 1000):
            yield b"".join(tar_member(Entry(f"d{j // 100}/f{j}", b"x")) for j in range(i, i + 1000))
        yield END_OF_ARCHIVE

    peak = await peak_memory_during(client.stream_in(container, "/tmp/bomb", bomb()))
    root = await root_of(gardend, container)
    assert len(os.listdir(root / "tmp/bomb")) == count // 100
    assert (root / f"tmp/bomb/d{(count - 1) // 100}/f{count - 1}").read_bytes() == b"x"
    assert peak.helper < 64 << 20
    assert snapshot(host_dir) == before


# Size, memory and disconnects


@dataclass
class Peak:
    gardend: int = 0
    helper: int = 0


def rss(pid: int | str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def helpers() -> list[int]:
    """The transfer helpers this test process (which runs gardend) has running."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"gardend.files.helper" in cmdline:
            found.append(int(entry))
    return found


async def peak_memory_during(work: Awaitable[None]) -> Peak:
    """The highest RSS of this process (client and gardend) and of any helper meanwhile."""
    peak = Peak()
    task = asyncio.ensure_future(work)
    while not task.done():
        peak.gardend = max(peak.gardend, rss("self"))
        for pid in helpers():
            with contextlib.suppress(OSError):
                peak.helper = max(peak.helper, rss(pid))
        await asyncio.wait([task], timeout=0.05)
    await task
    return peak


def pattern(size: int) -> Iterator[bytes]:
    block = hashlib.sha256(b"gardend").digest() * 32768
    for offset in range(0, size, len(block)):
        yield block[: min(len(block), size - offset)]


async def test_half_a_gigabyte_streams_in_and_out_in_flat_memory(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    size = 500 << 20
    header = tarfile.TarInfo("big")
    header.size = size
    sent = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        yield header.tobuf(tarfile.PAX_FORMAT)
        for chunk in pattern(size):
            sent.update(chunk)
            yield chunk
        yield bytes(-size % 512 + 1024)

    baseline = rss("self")
    peak_in = await peak_memory_during(client.stream_in(container, "/tmp/big", body()))

    received = hashlib.sha256()
    total = 0

    async def read_out() -> None:
        nonlocal total
        async with client.stream_out(container, "/tmp/big/big") as stream:
            assert raw_names(await stream.readexactly(512)) == ["big"]
            while total < size:
                chunk = await stream.read(min(size - total, 1 << 20))
                assert chunk
                received.update(chunk)
                total += len(chunk)
            await stream.read()

    peak_out = await peak_memory_during(read_out())
    assert total == size
    assert received.hexdigest() == sent.hexdigest()
    for peak in (peak_in, peak_out):
        assert peak.gardend - baseline < 64 << 20
        assert peak.helper < 64 << 20


async def wait_for_no_helpers() -> None:
    for _ in range(600):
        if not helpers():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"transfer helpers still running: {helpers()}")


async def test_a_client_gone_mid_stream_in_leaves_no_helper_and_a_usable_container(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    header = tarfile.TarInfo("cut-short")
    header.size = 100 << 20
    _, writer = await asyncio.open_connection(gardend.config.bind_ip, gardend.config.bind_port)
    writer.write(
        f"PUT /containers/{container}/files?destination=%2Ftmp%2Fcut&user= HTTP/1.1\r\n"
        "Host: api\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-tar\r\n\r\n".encode()
    )
    chunk = header.tobuf(tarfile.PAX_FORMAT) + bytes(1 << 20)
    writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    await writer.drain()
    for _ in range(600):
        if helpers():
            break
        await asyncio.sleep(0.05)
    writer.transport.abort()

    await wait_for_no_helpers()
    await client.stream_in(container, "/tmp/cut", tar_of(Entry("after", b"fine")))
    assert contents(await stream_out(client, container, "/tmp/cut/after"), "after") == b"fine"


async def test_a_client_gone_mid_stream_out_leaves_no_helper(
    client: GardenClient, gardend: gardend_server.Server, container: str
) -> None:
    await client.stream_in(container, "/tmp/large", tar_of(Entry("file", bytes(64 << 20))))
    reader = GardenClient(client.base_url)
    try:
        async with reader.stream_out(container, "/tmp/large") as body:
            await body.readexactly(1 << 20)
            assert helpers()
    finally:
        await reader.close()

    await wait_for_no_helpers()
    assert len(await stream_out(client, container, "/tmp/large/file")) > 64 << 20

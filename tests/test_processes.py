"""Processes through gardend, a real containerd and real runc: run, attach, stdio, signals."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gardend import server as gardend_server
from gardend.backend import attachments
from gardend.backend.store import containerd_id
from gardend.client import GardenClient, GardenClientError, GardenProcess, Output, ProcessError
from gardend.models import ProcessSpec
from tests.conftest import CreateFn, make_config

HANG_GUARD = 60.0
"""Only to fail instead of hanging; no test asserts on how long anything takes."""


@pytest.fixture(autouse=True)
def log_everything() -> Iterator[None]:
    """Builds every log record gardend would, so a bad ``extra`` key fails here, not in production."""
    logger = logging.getLogger("gardend")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(level)


async def run(client: GardenClient, handle: str, spec: dict[str, Any]) -> tuple[int, bytes, bytes]:
    out, err = Output(), Output()
    process = await client.run(handle, spec, stdout=out, stderr=err)
    status = await asyncio.wait_for(process.wait(), HANG_GUARD)
    return status, out.data, err.data


async def sh(client: GardenClient, handle: str, script: str, **spec: Any) -> bytes:
    status, out, err = await run(client, handle, {"path": "sh", "args": ["-c", script], **spec})
    assert status == 0, err
    return out


async def run_exiting_42_on_term(client: GardenClient, handle: str) -> GardenProcess:
    out = Output()
    script = "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done"
    process = await client.run(handle, {"path": "sh", "args": ["-c", script]}, stdout=out)
    await out.wait_for(b"ready")
    return process


async def eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(int(HANG_GUARD / 0.05)):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


async def wait_gone(client: GardenClient, handle: str, process_id: str) -> None:
    async def gone() -> bool:
        return process_id not in (await client.info(handle))["ProcessIDs"]

    await eventually(gone)


async def test_echo_reaches_stdout_and_stderr_separately(client: GardenClient, container: str) -> None:
    assert await run(client, container, {"path": "sh", "args": ["-c", "echo hello; echo world >&2"]}) == (
        0,
        b"hello\n",
        b"world\n",
    )


@pytest.mark.parametrize("code", [0, 1, 42])
async def test_exit_status_is_reported(client: GardenClient, container: str, code: int) -> None:
    status, _, _ = await run(client, container, {"path": "sh", "args": ["-c", f"exit {code}"]})
    assert status == code


async def test_stdin_is_piped_to_cat_until_eof(client: GardenClient, container: str) -> None:
    out = Output()
    process = await client.run(container, {"path": "cat"}, stdout=out)
    await process.write_stdin("hello\n")
    await out.wait_for(b"hello\n")
    await process.write_stdin("wörld\n")
    await process.close_stdin()
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 0
    assert out.data == "hello\nwörld\n".encode()


async def test_exit_is_reported_when_stdin_is_left_unread(client: GardenClient, container: str) -> None:
    process = await client.run(container, {"path": "ls"})
    await process.write_stdin("x" * 1024)
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 0


async def test_process_env_is_merged_over_the_containers(client: GardenClient, create: CreateFn) -> None:
    handle = await create(env=["CONTAINER_ENV=1", "TEST=hi"])
    status, out, _ = await run(client, handle, {"path": "env", "env": ["TEST=hello", "FRUIT=banana"]})
    assert status == 0
    assert b"CONTAINER_ENV=1\nTEST=hello\nFRUIT=banana\n" in out
    assert b"USER=root\n" in out
    assert b"HOME=/root\n" in out
    assert b"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" in out


async def test_user_is_resolved_by_name_or_taken_as_uid_gid(client: GardenClient, container: str) -> None:
    await sh(client, container, "adduser -D alice")
    uid_gid = await sh(client, container, "echo $(id -u alice):$(id -g alice)")
    assert await sh(client, container, "echo $(id -u):$(id -g) $HOME $USER", user="alice") == (
        uid_gid.strip() + b" /home/alice alice\n"
    )
    assert await sh(client, container, "echo $(id -u):$(id -g)", user="1001:1002") == b"1001:1002\n"
    assert await sh(client, container, "whoami") == b"root\n"
    with pytest.raises(GardenClientError) as e:
        await client.run(container, {"path": "true", "user": "nobody-here"})
    assert "unable to find user nobody-here: no matching entries in passwd file" in e.value.message


async def test_working_dir_defaults_to_home_and_is_created_owned_by_the_user(
    client: GardenClient, container: str
) -> None:
    await sh(client, container, "adduser -D alice && mkdir /home/alice/locked && chmod 0555 /home/alice/locked")
    assert await sh(client, container, "pwd", user="alice") == b"/home/alice\n"
    out = await sh(client, container, "pwd; stat -c %U .; touch file", user="alice", dir="/home/alice/locked/new")
    assert out == b"/home/alice/locked/new\nalice\n"
    assert await sh(client, container, "stat -c %U .", dir="/root/nonexistent") == b"root\n"


async def test_rlimits_apply_to_the_process(client: GardenClient, container: str) -> None:
    assert await sh(client, container, "ulimit -n; ulimit -u", rlimits={"nofile": 123, "nproc": 4567}) == b"123\n4567\n"


async def test_tty_is_a_terminal_with_the_given_size_and_can_be_resized(client: GardenClient, container: str) -> None:
    out = Output()
    spec = {"path": "sh", "args": ["-c", "tty; stty size; read x; stty size"]}
    process = await client.run(container, {**spec, "tty": {"window_size": {"columns": 100, "rows": 30}}}, stdout=out)
    await out.wait_for(b"30 100\r\n")
    assert out.data.startswith(b"/dev/pts/")
    await process.resize(123, 45)
    await process.write_stdin("go\n")
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 0
    assert out.data.endswith(b"45 123\r\n")


async def test_tty_defaults_to_80_columns_and_24_rows(client: GardenClient, container: str) -> None:
    status, out, err = await run(client, container, {"path": "stty", "args": ["size"], "tty": {}})
    assert (status, out, err) == (0, b"24 80\r\n", b"")


async def test_terminate_and_kill_reach_the_process(client: GardenClient, container: str) -> None:
    trapping = await run_exiting_42_on_term(client, container)
    await trapping.signal()
    assert await asyncio.wait_for(trapping.wait(), HANG_GUARD) == 42
    for kill, status in ((False, 143), (True, 137)):
        sleeper = await client.run(container, {"path": "sleep", "args": ["1000"]})
        await sleeper.signal(kill=kill)
        assert await asyncio.wait_for(sleeper.wait(), HANG_GUARD) == status


async def test_100_mb_of_output_arrive_intact(client: GardenClient, container: str) -> None:
    size = 100 << 20
    line = b"0123456789abcdef\n"
    digests = {"stdout": hashlib.sha256(), "stderr": hashlib.sha256()}
    counts = {"stdout": 0, "stderr": 0}

    def sink(name: str) -> Any:
        def write(chunk: bytes) -> None:
            digests[name].update(chunk)
            counts[name] += len(chunk)

        return write

    script = f"yes 0123456789abcdef | head -c {size}; yes 0123456789abcdef | head -c {size // 10} >&2"
    process = await client.run(
        container, {"path": "sh", "args": ["-c", script]}, stdout=sink("stdout"), stderr=sink("stderr")
    )
    assert await asyncio.wait_for(process.wait(), 10 * HANG_GUARD) == 0
    for name, length in (("stdout", size), ("stderr", size // 10)):
        expected = (line * (length // len(line) + 1))[:length]
        assert counts[name] == length
        assert digests[name].hexdigest() == hashlib.sha256(expected).hexdigest()


async def test_every_attached_client_gets_all_output_and_the_exit_status(client: GardenClient, container: str) -> None:
    first, second = Output(), Output()
    script = "read x; for i in 1 2 3; do echo $i; echo $i >&2; done; exit 12"
    process = await client.run(container, {"path": "sh", "args": ["-c", script]}, stdout=first)
    attached = await client.attach(container, process.id, stdout=second)
    await attached.write_stdin("go\n")
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 12
    assert await asyncio.wait_for(attached.wait(), HANG_GUARD) == 12
    assert first.data == second.data == b"1\n2\n3\n"


async def test_detached_process_keeps_running_and_a_later_attach_gets_what_was_missed(
    client: GardenClient, container: str
) -> None:
    out = Output()
    script = "echo one; until [ -e /tmp/go ]; do sleep 0.05; done; echo two; touch /tmp/done; read x; echo $x; exit 7"
    process = await client.run(container, {"path": "sh", "args": ["-c", script]}, stdout=out)
    await out.wait_for(b"one\n")
    await process.detach()
    await sh(client, container, "touch /tmp/go; until [ -e /tmp/done ]; do sleep 0.05; done")
    later = Output()
    attached = await client.attach(container, process.id, stdout=later)
    await later.wait_for(b"two\n")
    await attached.write_stdin("three\n")
    assert await asyncio.wait_for(attached.wait(), HANG_GUARD) == 7
    assert (out.data, later.data) == (b"one\n", b"two\nthree\n")


async def test_detaching_from_a_tty_process_does_not_hang_it_up(client: GardenClient, container: str) -> None:
    out = Output()
    process = await client.run(
        container, {"path": "sh", "args": ["-c", "echo ready; read x; echo got $x"], "tty": {}}, stdout=out
    )
    await out.wait_for(b"ready")
    await process.detach()
    again = Output()
    attached = await client.attach(container, process.id, stdout=again)
    await attached.write_stdin("hi\n")
    assert await asyncio.wait_for(attached.wait(), HANG_GUARD) == 0
    assert again.data.endswith(b"got hi\r\n")


async def test_attach_to_an_exited_process_gets_its_undelivered_output_and_status(
    client: GardenClient, container: str
) -> None:
    script = "until [ -e /tmp/go ]; do sleep 0.05; done; echo late; exit 3"
    process = await client.run(container, {"path": "sh", "args": ["-c", script]}, stdout=Output())
    await process.detach()
    await sh(client, container, "touch /tmp/go")
    await wait_gone(client, container, process.id)
    for expected in (b"late\n", b""):
        out = Output()
        attached = await client.attach(container, process.id, stdout=out)
        assert await asyncio.wait_for(attached.wait(), HANG_GUARD) == 3
        assert out.data == expected


async def test_processes_run_concurrently_in_one_container(client: GardenClient, container: str) -> None:
    async def one(n: int) -> None:
        status, out, err = await run(
            client, container, {"path": "sh", "args": ["-c", f"seq 1 {n * 100}; echo {n} >&2; exit {n}"]}
        )
        assert (status, out, err) == (n, "".join(f"{i}\n" for i in range(1, n * 100 + 1)).encode(), f"{n}\n".encode())

    await asyncio.gather(*(one(n) for n in range(1, 11)))


async def test_client_chosen_ids_are_used_and_a_duplicate_is_refused(client: GardenClient, container: str) -> None:
    process = await client.run(container, {"id": "some-id", "path": "sleep", "args": ["1000"]})
    assert process.id == "some-id"
    with pytest.raises(GardenClientError) as e:
        await client.run(container, {"id": "some-id", "path": "true"})
    assert "process ID 'some-id' already in use" in e.value.message
    generated = await client.run(container, {"path": "true"})
    assert generated.id not in ("", "some-id")
    assert await asyncio.wait_for(generated.wait(), HANG_GUARD) == 0
    await process.detach()


async def test_info_lists_live_processes(client: GardenClient, container: str) -> None:
    sleeper = await client.run(container, {"id": "sleeper", "path": "sleep", "args": ["1000"]})
    done = await client.run(container, {"id": "done", "path": "true"})
    assert await asyncio.wait_for(done.wait(), HANG_GUARD) == 0
    assert (await client.info(container))["ProcessIDs"] == ["sleeper"]
    assert (await client.bulk_info(container))[container]["Info"]["ProcessIDs"] == ["sleeper"]
    await sleeper.signal(kill=True)
    assert await asyncio.wait_for(sleeper.wait(), HANG_GUARD) == 137
    assert (await client.info(container))["ProcessIDs"] == []


async def test_errors_before_the_stream_are_garden_errors(client: GardenClient, container: str) -> None:
    cases = [
        (
            client.run(container, {"path": "does-not-exist"}),
            "ExecutableNotFoundError",
            "executable file not found in $PATH",
        ),
        (client.run(container, {"path": "/does/not/exist"}), "ExecutableNotFoundError", "no such file or directory"),
        (client.attach(container, "idontexist"), "ProcessNotFoundError", ""),
        (client.run("no-such-handle", {"path": "true"}), "ContainerNotFoundError", ""),
        (client.attach("no-such-handle", "p"), "ContainerNotFoundError", ""),
        (
            client.run(container, {"path": "true", "bind_mounts": [{"src_path": "a", "dst_path": "/b"}]}),
            "",
            "bind mounts",
        ),
    ]
    for call, kind, text in cases:
        with pytest.raises(GardenClientError) as e:
            await call
        assert 400 <= e.value.status < 500
        assert (e.value.type, text in e.value.message) == (kind, True)
        if kind == "ProcessNotFoundError":
            assert e.value.body["ProcessID"] == "idontexist"
        if kind == "ContainerNotFoundError":
            assert e.value.body["Handle"] == "no-such-handle"


async def test_stop_reports_each_exit_status_to_attached_clients(client: GardenClient, container: str) -> None:
    process = await run_exiting_42_on_term(client, container)
    await client.stop(container)
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 42
    assert (await client.info(container))["ProcessIDs"] == []


async def test_destroy_ends_open_process_streams(client: GardenClient, create: CreateFn) -> None:
    handle = await create()
    out = Output()
    process = await client.run(
        handle, {"path": "sh", "args": ["-c", "echo ready; sleep 1000"]}, stdout=out, stderr=Output()
    )
    await out.wait_for(b"ready")
    await client.destroy(handle)
    try:
        status = await asyncio.wait_for(process.wait(), HANG_GUARD)
        assert status == 137
    except ProcessError as e:
        assert "destroyed" in str(e)


async def test_hijacked_heads_are_http_1_1_chunked_and_keep_the_connection(
    client: GardenClient, container: str
) -> None:
    process = await client.run(container, {"path": "true"})
    head = process.head
    assert (head.status, head.raw.split(b" ")[0]) == (201, b"HTTP/1.1")
    assert head.headers["transfer-encoding"] == "chunked"
    assert "connection" not in head.headers
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 0


async def test_unknown_output_stream_is_answered_and_closed(client: GardenClient, container: str) -> None:
    host, port = client.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /containers/x/processes/y/attaches/999999/stdout HTTP/1.1\r\nHost: api\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert await asyncio.wait_for(reader.read(), HANG_GUARD) == b""
    writer.close()


async def test_output_of_an_exited_process_waits_for_a_late_output_connection(
    client: GardenClient, container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the arrival window, a running process's unread output is given up so it cannot
    block, but an exited one's stays for late connections (for FINISHED_WINDOW)."""
    monkeypatch.setattr(attachments, "ARRIVAL_WINDOW", 0.2)
    monkeypatch.setattr(attachments, "FINISHED_WINDOW", 30.0)
    process = await client.run(container, {"path": "echo", "args": ["late but whole"]})
    stream_id = process.stream_id
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 0
    await asyncio.sleep(0.5)
    host, port = client.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = f"/containers/{container}/processes/{process.id}/attaches/{stream_id}/stdout"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: api\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), HANG_GUARD) == b"late but whole\n"
    writer.close()


async def test_restart_keeps_processes_and_their_undelivered_output(depot: Path) -> None:
    config = make_config(depot / "process-restart")
    srv = await gardend_server.start(config)
    url = f"http://127.0.0.1:{config.bind_port}"
    async with aiohttp.ClientSession() as session:
        c = GardenClient(url, session)
        handle = await c.create()
        try:
            out = Output()
            script = (
                "echo one; until [ -e /tmp/go ]; do sleep 0.05; done; echo two; echo two >&2; touch /tmp/done; exit 5"
            )
            finishing = await c.run(handle, {"id": "finishing", "path": "sh", "args": ["-c", script]}, stdout=out)
            await out.wait_for(b"one\n")
            reading = await c.run(handle, {"id": "reading", "path": "cat", "tty": {}})
            await finishing.detach()
            await reading.detach()
            root = Path(f"/proc/{(await srv.client.get_task(containerd_id(handle))).pid}/root")
            await srv.close()

            (root / "tmp/go").touch()

            async def done() -> bool:
                return (root / "tmp/done").exists()

            await eventually(done)

            srv = await gardend_server.start(config)
            stdout, stderr = Output(), Output()
            attached = await c.attach(handle, "finishing", stdout=stdout, stderr=stderr)
            assert await asyncio.wait_for(attached.wait(), HANG_GUARD) == 5
            assert (stdout.data, stderr.data) == (b"two\n", b"two\n")
            echoed = Output()
            cat = await c.attach(handle, "reading", stdout=echoed)
            await cat.write_stdin("still here\n")
            await echoed.wait_for(b"still here\r\n")
            await cat.signal(kill=True)
            assert await asyncio.wait_for(cat.wait(), HANG_GUARD) == 137
        finally:
            await c.destroy(handle)
            await srv.close()
    assert not any((config.depot / "processes").glob("*/*"))


@pytest.mark.parametrize("privileged", [False, True])
async def test_any_user_can_reopen_its_stdio_through_dev(
    client: GardenClient, create: CreateFn, privileged: bool
) -> None:
    handle = await create(privileged=privileged)
    await sh(client, handle, "adduser -D alice")
    out = Output()
    process = await client.run(handle, {"path": "cat", "args": ["/dev/stdin"], "user": "alice"}, stdout=out)
    await process.write_stdin("potato\n")
    await out.wait_for(b"potato\n")
    await process.close_stdin()
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 0
    script = "echo -n potato >/dev/stdout; echo -n cake >/dev/stderr"
    assert await run(client, handle, {"path": "sh", "args": ["-c", script], "user": "alice"}) == (0, b"potato", b"cake")


async def test_attach_racing_the_start_of_its_process_waits_for_it(
    gardend: gardend_server.Server, container: str
) -> None:
    garden = gardend.garden
    record = garden.containers.get(container)
    spec = ProcessSpec(id="racer", path="sh", args=["-c", "exit 9"])
    running = asyncio.create_task(garden.processes.run(record, spec))
    await asyncio.sleep(0)
    attached = await garden.processes.attach(record, "racer")
    started = await running
    assert attached.process is started.process
    assert (await attached.wait()).status == 9
    for attachment in (started, attached):
        attachment.finish()


async def test_cleanup_on_wait_forgets_a_process_once_its_exit_was_sent(depot: Path) -> None:
    config = make_config(depot / "cleanup-on-wait", cleanup_process_dirs_on_wait=True)
    srv = await gardend_server.start(config)
    try:
        async with aiohttp.ClientSession() as session:
            c = GardenClient(f"http://127.0.0.1:{config.bind_port}", session)
            handle = await c.create()
            for _ in range(2):
                process = await c.run(handle, {"id": "again", "path": "sh", "args": ["-c", "exit 4"]})
                assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 4
            with pytest.raises(GardenClientError) as e:
                await c.attach(handle, "again")
            assert e.value.type == "ProcessNotFoundError"
            await c.destroy(handle)
    finally:
        await srv.close()


async def test_a_signal_gets_through_behind_stdin_the_process_never_reads(client: GardenClient, container: str) -> None:
    process = await client.run(container, {"path": "sleep", "args": ["1000"]})
    for _ in range(8):
        await process.write_stdin("x" * (32 << 10))
    await process.close_stdin()
    await process.signal(kill=True)
    assert await asyncio.wait_for(process.wait(), HANG_GUARD) == 137

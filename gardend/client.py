"""A small async Garden client over aiohttp, for tests, benchmarks and scripts.

It speaks the same wire format as the Go client, including its error objects, so a
failing call raises :class:`GardenClientError` carrying the server's ``Type``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl as ssl_module
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl


class GardenClientError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("Message", ""))
        self.status = status
        self.type = str(body.get("Type", ""))
        self.message = str(body.get("Message", ""))
        self.body = body


class GardenClient:
    def __init__(
        self, base_url: str, session: aiohttp.ClientSession | None = None, ssl: ssl_module.SSLContext | None = None
    ) -> None:
        self.ssl = ssl
        self.base_url = base_url.rstrip("/")
        self.session = session or aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl) if ssl else None)

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | AsyncIterable[bytes] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() + b"\n" if body is not None else None)
        async with self.session.request(method, self.base_url + path, data=data, params=params) as resp:
            text = await resp.read()
            payload = json.loads(text) if text.strip() else None
            if not 200 <= resp.status < 300:
                raise GardenClientError(
                    resp.status, payload if isinstance(payload, dict) else {"Message": text.decode()}
                )
            return payload

    async def ping(self) -> None:
        await self.request("GET", "/ping")

    async def capacity(self) -> dict[str, int]:
        result: dict[str, int] = await self.request("GET", "/capacity")
        return result

    async def create(self, **spec: Any) -> str:
        reply = await self.request("POST", "/containers", spec)
        return str(reply["Handle"])

    async def list(self, **filters: str) -> list[str]:
        reply = await self.request("GET", "/containers", params=filters)
        return list(reply["Handles"] or [])

    async def destroy(self, handle: str) -> None:
        await self.request("DELETE", f"/containers/{handle}")

    async def info(self, handle: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/containers/{handle}/info")
        return result

    async def bulk_info(self, *handles: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", "/containers/bulk_info", params={"handles": ",".join(handles)}
        )
        return result

    async def metrics(self, handle: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"/containers/{handle}/metrics")
        return result

    async def bulk_metrics(self, *handles: str) -> dict[str, Any]:
        params = {"handles": ",".join(handles)}
        result: dict[str, Any] = await self.request("GET", "/containers/bulk_metrics", params=params)
        return result

    async def stop(self, handle: str, kill: bool = False) -> None:
        await self.request("PUT", f"/containers/{handle}/stop", {"kill": kill})

    async def properties(self, handle: str) -> dict[str, str]:
        result: dict[str, str] = await self.request("GET", f"/containers/{handle}/properties")
        return result

    async def property(self, handle: str, key: str) -> str:
        return str((await self.request("GET", f"/containers/{handle}/properties/{key}"))["value"])

    async def set_property(self, handle: str, key: str, value: str) -> None:
        await self.request("PUT", f"/containers/{handle}/properties/{key}", {"value": value})

    async def remove_property(self, handle: str, key: str) -> None:
        await self.request("DELETE", f"/containers/{handle}/properties/{key}")

    async def set_grace_time(self, handle: str, grace_ns: int) -> None:
        await self.request("PUT", f"/containers/{handle}/grace_time", grace_ns)

    async def stream_in(
        self, handle: str, destination: str, data: bytes | AsyncIterable[bytes], user: str = ""
    ) -> None:
        params = {"destination": destination, "user": user}
        await self.request("PUT", f"/containers/{handle}/files", raw=data, params=params)

    @contextlib.asynccontextmanager
    async def stream_out(self, handle: str, source: str, user: str = "") -> AsyncIterator[aiohttp.StreamReader]:
        """The tar as a stream; an error answered before the body raises here."""
        params = {"source": source, "user": user}
        async with self.session.get(f"{self.base_url}/containers/{handle}/files", params=params) as resp:
            if not 200 <= resp.status < 300:
                raise GardenClientError(resp.status, await resp.json(content_type=None))
            yield resp.content

    async def run(
        self, handle: str, spec: dict[str, Any], *, stdout: Sink | None = None, stderr: Sink | None = None
    ) -> GardenProcess:
        """Runs a process; output goes to the sinks given (a missing sink opens no connection)."""
        return await self._process("POST", f"/containers/{handle}/processes", handle, spec, stdout, stderr)

    async def attach(
        self, handle: str, process_id: str, *, stdout: Sink | None = None, stderr: Sink | None = None
    ) -> GardenProcess:
        return await self._process("GET", f"/containers/{handle}/processes/{process_id}", handle, None, stdout, stderr)

    async def _process(
        self, method: str, path: str, handle: str, body: Any, stdout: Sink | None, stderr: Sink | None
    ) -> GardenProcess:
        url = yarl.URL(self.base_url)
        endpoint = _Endpoint(url.host or "127.0.0.1", url.port or 80, self.ssl)
        spec = None if body is None else {"rlimits": {}, "image": {}, **body}
        process = GardenProcess(*await _open_hijacked(endpoint, method, path, spec))
        try:
            await process._start(endpoint, handle, stdout, stderr)
        except BaseException:
            await process.detach()
            raise
        return process


Sink = Callable[[bytes], None]


class ProcessError(Exception):
    """A process's wait failed: the server sent an error, or the control connection broke."""


class Output:
    """A sink that keeps everything a process wrote and lets a caller wait for some of it."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._changed = asyncio.Event()

    @property
    def data(self) -> bytes:
        return bytes(self._data)

    def __call__(self, chunk: bytes) -> None:
        self._data += chunk
        self._changed.set()
        self._changed.clear()

    async def wait_for(self, needle: bytes, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while needle not in self._data:
                await self._changed.wait()


@dataclass
class _Head:
    status: int
    headers: dict[str, str]
    raw: bytes


@dataclass(frozen=True)
class _Endpoint:
    host: str
    port: int
    ssl: ssl_module.SSLContext | None


async def _open_hijacked(
    endpoint: _Endpoint, method: str, path: str, body: Any = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, _Head]:
    """Sends one request as the Go client does for hijacked routes and reads the response head."""
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=endpoint.ssl)
    data = b"" if body is None else json.dumps(body).encode() + b"\n"
    head = f"{method} {path} HTTP/1.1\r\nHost: api\r\nUser-Agent: gardend-client\r\n"
    if body is not None or "/attaches/" in path:
        head += "Content-Type: application/json\r\n"
    if body is not None:
        head += f"Content-Length: {len(data)}\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    status = int(lines[0].split()[1])
    if not 200 <= status < 300:
        text = await reader.readexactly(int(headers.get("content-length", "0")))
        writer.close()
        payload = json.loads(text) if text.strip() else {}
        raise GardenClientError(status, payload if isinstance(payload, dict) else {"Message": text.decode()})
    return reader, writer, _Head(status, headers, raw)


class GardenProcess:
    """A process as the Go client holds it: a control connection and optional output connections."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: _Head) -> None:
        self._reader = reader
        self._writer = writer
        self.head = head
        self.id = ""
        self.stream_id = ""
        self._outputs: list[tuple[asyncio.StreamWriter, asyncio.Task[None]]] = []
        self._control: asyncio.Task[int] | None = None
        self._lock = asyncio.Lock()

    async def _start(self, endpoint: _Endpoint, handle: str, stdout: Sink | None, stderr: Sink | None) -> None:
        first = json.loads(await self._reader.readline())
        self.id, self.stream_id = first["process_id"], first["stream_id"]
        for name, sink in (("stdout", stdout), ("stderr", stderr)):
            if sink is not None:
                path = f"/containers/{handle}/processes/{self.id}/attaches/{self.stream_id}/{name}"
                reader, writer, _ = await _open_hijacked(endpoint, "GET", path)
                self._outputs.append((writer, asyncio.create_task(self._copy(reader, writer, sink))))
        self._control = asyncio.create_task(self._await_exit())

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sink: Sink) -> None:
        try:
            while chunk := await reader.read(256 << 10):
                sink(chunk)
        finally:
            writer.close()

    async def _await_exit(self) -> int:
        while line := await self._reader.readline():
            message = json.loads(line)
            if message.get("error") is not None:
                raise ProcessError(f"process error: {message['error']}")
            if message.get("exit_status") is not None:
                return int(message["exit_status"])
        raise ProcessError("decode failed: EOF")

    async def wait(self) -> int:
        """The exit status, once the server sent it and every output stream has ended."""
        assert self._control is not None
        try:
            return await asyncio.shield(self._control)
        finally:
            await asyncio.gather(*(task for _, task in self._outputs))
            self._writer.close()

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._lock:
            self._writer.write(json.dumps({"process_id": self.id, **message}).encode() + b"\n")
            await self._writer.drain()

    async def write_stdin(self, data: str) -> None:
        await self._send({"source": 0, "data": data})

    async def close_stdin(self) -> None:
        await self._send({"source": 0})

    async def signal(self, kill: bool = False) -> None:
        await self._send({"signal": 1 if kill else 0})

    async def resize(self, columns: int, rows: int) -> None:
        await self._send({"tty": {"window_size": {"columns": columns, "rows": rows}}})

    async def detach(self) -> None:
        """Drops every connection without waiting, as a client that goes away does."""
        for writer in [self._writer, *(w for w, _ in self._outputs)]:
            writer.close()
        for task in [self._control, *(t for _, t in self._outputs)]:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in [self._control, *(t for _, t in self._outputs)] if t), return_exceptions=True)

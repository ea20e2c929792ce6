"""Routes for processes: Run and Attach (the control connection) and their output streams.

The control connection carries newline-delimited ProcessPayload JSON both ways once the
head is sent: first the process and stream ids, last the exit status or an error; in
between, stdin, signals and window sizes from the client. A client that goes away leaves
its process running. Stdout and stderr are raw bytes on connections of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web
from pydantic import ValidationError

from gardend.backend.attachments import Attachment
from gardend.backend.garden import Garden
from gardend.http.hijack import HijackedConnection, hijack
from gardend.http.wire import read_model
from gardend.models import ProcessPayload, ProcessSpec

log = logging.getLogger("gardend.http")

MAX_MESSAGE = 8 << 20
"""Longest control message accepted; the Go client sends stdin in chunks of at most 32 KiB."""


def _message(payload: ProcessPayload) -> bytes:
    return json.dumps(payload.model_dump(mode="json", exclude_defaults=True)).encode() + b"\n"


async def _follow_client(connection: HijackedConnection, attachment: Attachment) -> None:
    """Acts on the client's messages until it goes away."""
    while True:
        try:
            line = await connection.readline(MAX_MESSAGE)
        except ValueError as e:
            log.warning("dropping process connection", extra={"process_id": attachment.process_id, "error": str(e)})
            return
        if line is None:
            return
        if not line.strip():
            continue
        try:
            message = ProcessPayload.model_validate_json(line)
        except ValidationError as e:
            log.warning("ignoring bad process message", extra={"process_id": attachment.process_id, "error": str(e)})
            continue
        if message.tty is not None:
            if message.tty.window_size is not None:
                await attachment.resize(message.tty.window_size)
        elif message.source is not None:
            if message.data is not None:
                await attachment.write_stdin(message.data.encode())
            else:
                await attachment.close_stdin()
        elif message.signal is not None:
            await attachment.signal(message.signal)


async def _control(connection: HijackedConnection, attachment: Attachment) -> None:
    connection.write(_message(ProcessPayload(process_id=attachment.process_id, stream_id=attachment.stream_id)))
    client = asyncio.create_task(_follow_client(connection, attachment))
    result = asyncio.create_task(attachment.wait())
    try:
        await asyncio.wait({client, result}, return_when=asyncio.FIRST_COMPLETED)
        if result.done() and not connection.lost.is_set():
            ended = result.result()
            final = ProcessPayload(process_id=attachment.process_id, exit_status=ended.status, error=ended.error)
            connection.write(_message(final))
            await attachment.reported()
    finally:
        for task in (client, result):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _send_output(connection: HijackedConnection, garden: Garden, stream_id: str, name: str) -> None:
    stream = garden.output(stream_id, name)
    if stream is None:
        return
    connection.on_lost(stream.close)
    try:
        while data := await stream.read():
            connection.write(data)
            await connection.drain()
            if connection.lost.is_set():
                return
            stream.advance(len(data))
    finally:
        stream.close()


def add_routes(app: web.Application, key: web.AppKey[Garden]) -> None:
    def garden(request: web.Request) -> Garden:
        return request.app[key]

    async def run(request: web.Request) -> web.StreamResponse:
        spec = await read_model(request, ProcessSpec)
        async with garden(request).run(request.match_info["handle"], spec) as attachment:
            return await hijack(request, 201, lambda connection: _control(connection, attachment))

    async def attach(request: web.Request) -> web.StreamResponse:
        handle, process_id = request.match_info["handle"], request.match_info["pid"]
        async with garden(request).attach(handle, process_id) as attachment:
            return await hijack(request, 200, lambda connection: _control(connection, attachment))

    async def output(request: web.Request) -> web.StreamResponse:
        stream_id, name = request.match_info["sid"], request.match_info["stream"]
        return await hijack(request, 200, lambda connection: _send_output(connection, garden(request), stream_id, name))

    app.router.add_post("/containers/{handle}/processes", run)
    app.router.add_get("/containers/{handle}/processes/{pid}", attach)
    app.router.add_get("/containers/{handle}/processes/{pid}/attaches/{sid}/{stream:stdout|stderr}", output)

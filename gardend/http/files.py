"""Routes for StreamIn and StreamOut: tar bodies in both directions, streamed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gardend.backend.files import STREAM_IN
from gardend.backend.garden import Garden
from gardend.errors import BadRequestError, GardenError
from gardend.http.wire import reply

log = logging.getLogger("gardend.http")

CHUNK = 1 << 20


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body; a client that goes away or breaks the framing made a bad request."""
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            yield chunk
    except (ConnectionResetError, HttpProcessingError) as e:
        raise BadRequestError(f"{STREAM_IN}: reading the request body: {e}") from None


def add_routes(app: web.Application, key: web.AppKey[Garden]) -> None:
    async def stream_in(request: web.Request) -> web.Response:
        """Answers only once the tar is extracted: clients check the files right after."""
        await request.app[key].stream_in(
            request.match_info["handle"],
            request.query.get("destination", ""),
            request.query.get("user", ""),
            _body(request),
        )
        return reply()

    async def stream_out(request: web.Request) -> web.StreamResponse:
        """A failure after the first byte aborts the connection: the client then reads an
        unexpected EOF instead of mistaking a cut tar for a whole one."""
        garden = request.app[key]
        handle = request.match_info["handle"]
        source, user = request.query.get("source", ""), request.query.get("user", "")
        async with garden.stream_out(handle, source, user) as chunks:
            response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
            await response.prepare(request)
            try:
                async for chunk in chunks:
                    await response.write(chunk)
            except ConnectionResetError:
                log.info("stream out client went away", extra={"handle": handle})
                return response
            except GardenError as e:
                log.error("stream out failed mid-stream", extra={"handle": handle, "error": e.message})
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
        return response

    app.router.add_put("/containers/{handle}/files", stream_in)
    app.router.add_get("/containers/{handle}/files", stream_out)

"""Routes for resource limits and usage: limits, metrics and bulk metrics."""

from __future__ import annotations

from aiohttp import web

from gardend.backend.garden import Garden
from gardend.backend.limits import LIMIT_KINDS
from gardend.http.wire import handles_query, reply
from gardend.models import to_wire, to_wire_omitempty


def add_routes(app: web.Application, key: web.AppKey[Garden]) -> None:
    def garden(request: web.Request) -> Garden:
        return request.app[key]

    async def limits(request: web.Request) -> web.Response:
        handle, kind = request.match_info["handle"], request.match_info["kind"]
        return reply(to_wire_omitempty(await garden(request).limits(handle, kind)))

    async def metrics(request: web.Request) -> web.Response:
        return reply(to_wire(await garden(request).metrics(request.match_info["handle"])))

    async def bulk_metrics(request: web.Request) -> web.Response:
        return reply(await garden(request).bulk_metrics(handles_query(request)))

    app.router.add_get("/containers/bulk_metrics", bulk_metrics)
    app.router.add_get("/containers/{handle}/metrics", metrics)
    app.router.add_get(f"/containers/{{handle}}/limits/{{kind:{'|'.join(LIMIT_KINDS)}}}", limits)

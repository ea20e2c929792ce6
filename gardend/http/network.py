"""Routes for NetIn, NetOut and BulkNetOut."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from gardend.backend.garden import Garden
from gardend.errors import BadRequestError
from gardend.http.wire import read_json, read_model, reply
from gardend.models import NetIn, NetOutRule

_RULES = TypeAdapter(list[NetOutRule])


def add_routes(app: web.Application, key: web.AppKey[Garden]) -> None:
    def garden(request: web.Request) -> Garden:
        return request.app[key]

    async def net_in(request: web.Request) -> web.Response:
        body = await read_model(request, NetIn)
        mapping = await garden(request).net_in(request.match_info["handle"], body.host_port, body.container_port)
        return reply({"host_port": mapping.host_port, "container_port": mapping.container_port})

    async def net_out(request: web.Request) -> web.Response:
        rule = await read_model(request, NetOutRule)
        await garden(request).net_out(request.match_info["handle"], [rule])
        return reply()

    async def bulk_net_out(request: web.Request) -> web.Response:
        data = await read_json(request)
        try:
            rules = _RULES.validate_python([] if data is None else data)
        except ValidationError as e:
            raise BadRequestError(f"invalid NetOutRule list: {e.errors()[0]['msg']}") from None
        await garden(request).net_out(request.match_info["handle"], rules)
        return reply()

    app.router.add_post("/containers/{handle}/net/in", net_in)
    app.router.add_post("/containers/{handle}/net/out", net_out)
    app.router.add_post("/containers/{handle}/net/out/bulk", bulk_net_out)

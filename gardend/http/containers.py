"""Routes for the container lifecycle, info, properties and grace time."""

from __future__ import annotations

import json

from aiohttp import web

from gardend.backend.garden import Garden
from gardend.errors import BadRequestError
from gardend.http.wire import handles_query, read_json, read_model, reply
from gardend.models import ContainerSpec, PropertyValue, StopRequest, to_wire


def add_routes(app: web.Application, key: web.AppKey[Garden]) -> None:
    def garden(request: web.Request) -> Garden:
        return request.app[key]

    def handle_of(request: web.Request) -> str:
        return request.match_info["handle"]

    async def ping(request: web.Request) -> web.Response:
        await garden(request).ping()
        return reply()

    async def capacity(request: web.Request) -> web.Response:
        return reply(to_wire(await garden(request).capacity()))

    async def create(request: web.Request) -> web.Response:
        spec = await read_model(request, ContainerSpec)
        return reply({"Handle": await garden(request).create(spec)})

    async def list_containers(request: web.Request) -> web.Response:
        filters = {k: request.query.getone(k) for k in request.query}
        return reply({"Handles": garden(request).list_handles(filters)})

    async def bulk_info(request: web.Request) -> web.Response:
        return reply(await garden(request).bulk_info(handles_query(request)))

    async def destroy(request: web.Request) -> web.Response:
        await garden(request).destroy(handle_of(request))
        return reply()

    async def stop(request: web.Request) -> web.Response:
        body = await read_model(request, StopRequest)
        await garden(request).stop(handle_of(request), body.kill)
        return reply()

    async def info(request: web.Request) -> web.Response:
        return reply(to_wire(await garden(request).info(handle_of(request))))

    async def properties(request: web.Request) -> web.Response:
        return reply(await garden(request).properties(handle_of(request)))

    async def get_property(request: web.Request) -> web.Response:
        value = await garden(request).property(handle_of(request), request.match_info["key"])
        return reply({"value": value})

    async def set_property(request: web.Request) -> web.Response:
        body = await read_model(request, PropertyValue)
        await garden(request).set_property(handle_of(request), request.match_info["key"], body.value)
        return reply()

    async def remove_property(request: web.Request) -> web.Response:
        await garden(request).remove_property(handle_of(request), request.match_info["key"])
        return reply()

    async def set_grace_time(request: web.Request) -> web.Response:
        value = await read_json(request)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise BadRequestError(f"grace time must be a non-negative integer of nanoseconds, got {json.dumps(value)}")
        await garden(request).set_grace_time(handle_of(request), value)
        return reply()

    app.router.add_get("/ping", ping)
    app.router.add_get("/capacity", capacity)
    app.router.add_post("/containers", create)
    app.router.add_get("/containers", list_containers)
    app.router.add_get("/containers/bulk_info", bulk_info)
    app.router.add_delete("/containers/{handle}", destroy)
    app.router.add_put("/containers/{handle}/stop", stop)
    app.router.add_get("/containers/{handle}/info", info)
    app.router.add_get("/containers/{handle}/properties", properties)
    app.router.add_get("/containers/{handle}/properties/{key}", get_property)
    app.router.add_put("/containers/{handle}/properties/{key}", set_property)
    app.router.add_delete("/containers/{handle}/properties/{key}", remove_property)
    app.router.add_put("/containers/{handle}/grace_time", set_grace_time)

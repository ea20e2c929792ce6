"""The aiohttp application: error handling and the route table."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gardend.backend.garden import Garden
from gardend.errors import BadRequestError, GardenError
from gardend.http import containers, files, network, processes, resources
from gardend.http.wire import MAX_JSON_BODY, error_reply

log = logging.getLogger("gardend.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GARDEN_KEY = web.AppKey("garden", Garden)


@web.middleware
async def garden_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as a Garden error object, never as a traceback."""
    try:
        return await handler(request)
    except GardenError as e:
        if e.status >= 500:
            log.error("request failed", extra={"method": request.method, "path": request.path, "error": e.message})
        return error_reply(e)
    except web.HTTPRequestEntityTooLarge as e:
        return error_reply(BadRequestError(f"request body too large: {e.text}"))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_reply(_http_error(e))
    except Exception as e:
        log.exception("unexpected error", extra={"method": request.method, "path": request.path})
        return error_reply(GardenError(f"internal error: {type(e).__name__}: {e}"))


def _http_error(e: web.HTTPException) -> GardenError:
    return GardenError(f"{e.status} {e.reason}", status=e.status)


def make_app(garden: Garden) -> web.Application:
    app = web.Application(middlewares=[garden_errors], client_max_size=MAX_JSON_BODY)
    app[GARDEN_KEY] = garden
    containers.add_routes(app, GARDEN_KEY)
    files.add_routes(app, GARDEN_KEY)
    network.add_routes(app, GARDEN_KEY)
    resources.add_routes(app, GARDEN_KEY)
    processes.add_routes(app, GARDEN_KEY)
    return app

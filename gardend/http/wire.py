"""Request parsing and reply writing shared by every route."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gardend.errors import BadRequestError, GardenError

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY = 16 << 20


def reply(data: Any = None, status: int = 200) -> web.Response:
    """One JSON value and a newline, as the reference server writes it."""
    body = json.dumps({} if data is None else data) + "\n"
    return web.Response(body=body.encode(), status=status, content_type="application/json")


def handles_query(request: web.Request) -> list[str]:
    """The comma-joined ``handles`` parameter of the bulk routes; missing means none."""
    return [h for h in request.query.get("handles", "").split(",") if h]


def error_reply(err: GardenError) -> web.Response:
    return reply(err.to_wire(), status=err.status)


async def read_json(request: web.Request) -> Any:
    body = await request.read()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequestError(f"malformed JSON body: {e}") from None


async def read_model(request: web.Request, model: type[M]) -> M:
    """The body as ``model``; an empty body is the zero value, as Go's client never sends one."""
    data = await read_json(request)
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors())
        raise BadRequestError(f"invalid {model.__name__}: {problems}") from None

"""A small async Garden client over aiohttp, for tests, benchmarks and scripts.

It speaks the same wire format as the Go client, including its error objects, so a
failing call raises :class:`GardenClientError` carrying the server's ``Type``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aiohttp


class GardenClientError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("Message", ""))
        self.status = status
        self.type = str(body.get("Type", ""))
        self.message = str(body.get("Message", ""))
        self.body = body


class GardenClient:
    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or aiohttp.ClientSession()

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

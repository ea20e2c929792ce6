"""gdn's debug listener: expvar-style ``/debug/vars`` on its own address.

Go's expvar reports ``memstats``; Python has no Go heap, so the figures come from the
process's own memory as the kernel counts it (resident and virtual bytes).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from aiohttp import web

from gardend.http.wire import reply

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _memstats() -> dict[str, int]:
    with open("/proc/self/statm") as f:
        size, resident = (int(v) * _PAGE for v in f.read().split()[:2])
    return {"Alloc": resident, "HeapAlloc": resident, "Sys": size}


async def _vars(request: web.Request) -> web.Response:
    data: dict[str, Any] = {"cmdline": sys.argv, "memstats": await asyncio.to_thread(_memstats)}
    return reply(data)


def make_debug_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/debug/vars", _vars)
    return app

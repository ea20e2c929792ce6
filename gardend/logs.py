"""JSON-lines logging, one object per record, so logs can be parsed like gdn's."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": f"{time.time():.6f}",
            "level": record.levelname.lower(),
            "source": record.name,
            "message": record.getMessage(),
        }
        data = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if data:
            entry["data"] = data
        if record.exc_info:
            entry.setdefault("data", {})["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

"""The ``gardend`` command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from gardend import logs, server
from gardend.config import parse_args


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    logs.setup(config.log_level)
    try:
        asyncio.run(server.serve(config))
    except KeyboardInterrupt:
        pass
    except Exception as e:
        print(f"gardend: {e}", file=sys.stderr)
        sys.exit(1)

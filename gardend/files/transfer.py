"""What gardend asks of a transfer helper, and how the helper reports failure.

Both sides import this module, the helper before it enters the container, so it uses
nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

Direction = Literal["in", "out"]

ARCHIVE = "archive"
"""The tar stream is malformed or asks for something forbidden."""
PATH = "path"
"""A path in the container is unusable: not a directory, a loop, read-only."""
MISSING = "missing"
"""The path to stream out does not exist."""
PERMISSION = "permission"
"""The user may not do this."""
FAILED = "failed"
"""Anything else: out of space, I/O errors, a helper that died."""


@dataclass(frozen=True)
class Transfer:
    """One transfer: its direction, the container path and the ids to act as.

    ``pidfd`` is the helper's fd for the container's init process. ``path`` is absolute
    in the container; for ``out`` a trailing ``/`` means "the directory's contents".
    """

    direction: Direction
    path: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    pidfd: int
    user_namespace: bool
    allow_devices: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Transfer:
        data = json.loads(text)
        data["groups"] = tuple(data["groups"])
        return cls(**data)


class TransferError(Exception):
    """A transfer failed; ``kind`` says whose fault it is, ``message`` what happened."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "message": self.message})

    @classmethod
    def from_json(cls, text: str) -> TransferError:
        data = json.loads(text)
        return cls(str(data["kind"]), str(data["message"]))


_PERMISSION = {errno.EACCES, errno.EPERM}
_FAILED = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE, errno.ENFILE}


def os_failure(err: OSError, what: str, missing: str = MISSING) -> TransferError:
    """``err`` as a transfer error about ``what``; ``missing`` is the kind for ENOENT."""
    if err.errno in _PERMISSION:
        kind = PERMISSION
    elif err.errno in _FAILED:
        kind = FAILED
    elif err.errno == errno.ENOENT:
        kind = missing
    else:
        kind = PATH
    return TransferError(kind, f"{what}: {err.strerror or err}")


@contextlib.contextmanager
def failing_as(what: str, missing: str = MISSING) -> Iterator[None]:
    """Turns an OSError into a TransferError that says what was being done."""
    try:
        yield
    except OSError as e:
        raise os_failure(e, what, missing) from None

"""containerd failures, classified so the backend can act on them without grpc types."""

from __future__ import annotations

import grpc


class ContainerdError(Exception):
    """A containerd call failed; the message names the call and containerd's reason."""


class NotFound(ContainerdError):
    pass


class AlreadyExists(ContainerdError):
    pass


class Unavailable(ContainerdError):
    """containerd did not answer in time or its socket is gone."""


class FailedPrecondition(ContainerdError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[ContainerdError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def wrap(call: str, err: grpc.aio.AioRpcError) -> ContainerdError:
    kind = _BY_CODE.get(err.code(), ContainerdError)
    return kind(f"containerd {call}: {err.details() or err.code().name}")

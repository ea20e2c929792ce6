"""containerd failures, classified so the backend can act on them without grpc types.

They are Garden errors too, so one the backend does not handle still reaches the client
as a clear error naming the call (and as ServiceUnavailableError when containerd is down).
"""

from __future__ import annotations

import grpc

from gardend.errors import GardenError, ServiceUnavailableError


class ContainerdError(GardenError):
    """A containerd call failed; the message names the call and containerd's reason."""


class NotFound(ContainerdError):
    pass


class AlreadyExists(ContainerdError):
    pass


class Unavailable(ServiceUnavailableError, ContainerdError):
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

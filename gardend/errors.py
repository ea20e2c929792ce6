"""Garden errors: what the backend raises and the HTTP layer turns into error JSON.

The Go client picks the error class from ``Type`` alone; the HTTP status only tells
success from failure, so statuses are chosen for curl users and proxies.
"""

from __future__ import annotations

from typing import ClassVar


class GardenError(Exception):
    """A failure reported to the client as a Garden error object."""

    type: ClassVar[str] = ""
    default_status: ClassVar[int] = 500

    def __init__(self, message: str, *, handle: str = "", process_id: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.status = status or self.default_status
        self.message = message
        self.handle = handle
        self.process_id = process_id

    def to_wire(self) -> dict[str, str]:
        return {
            "Type": self.type,
            "Message": self.message,
            "Handle": self.handle,
            "ProcessID": self.process_id,
            "Binary": "",
        }


class BadRequestError(GardenError):
    """The request itself is invalid: malformed JSON, bad values, bad paths."""

    default_status = 400


class NotFoundError(GardenError):
    """Something other than a container or process is missing, such as a property."""

    default_status = 404


class ConflictError(GardenError):
    """The request clashes with current state: a handle or process id in use."""

    default_status = 409


class ContainerNotFoundError(GardenError):
    type = "ContainerNotFoundError"
    default_status = 404

    def __init__(self, handle: str) -> None:
        super().__init__(f"unknown handle: {handle}", handle=handle)


class ProcessNotFoundError(GardenError):
    type = "ProcessNotFoundError"
    default_status = 404

    def __init__(self, process_id: str) -> None:
        super().__init__(f"unknown process: {process_id}", process_id=process_id)


class ExecutableNotFoundError(GardenError):
    type = "ExecutableNotFoundError"
    default_status = 422


class ServiceUnavailableError(GardenError):
    type = "ServiceUnavailableError"
    default_status = 503

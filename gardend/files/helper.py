"""The transfer helper: ``python -I -m gardend.files.helper TRANSFER_JSON``.

gardend starts one per StreamIn or StreamOut, with the container's init pidfd inherited.
Stream in: the tar arrives on stdin. Stream out: the tar leaves on stdout, and nothing
is written before the source has been found, so gardend can still answer with an error.
On failure the last line on stderr is a TransferError as JSON and the exit status is 1.
"""

from __future__ import annotations

import os
import posixpath
import sys

from gardend.files import namespace, pipes
from gardend.files.archive import Archiver
from gardend.files.extract import extract
from gardend.files.pipes import PipeReader
from gardend.files.transfer import FAILED, PATH, Transfer, TransferError, failing_as
from gardend.rootfs import inroot


def stream_in(transfer: Transfer) -> None:
    """Creates the destination as the container's root, owned by the user (as Guardian
    does, even where the user could not create it), then extracts as the user."""
    with failing_as(f"{transfer.path}: cannot create destination", missing=PATH):
        inroot.make_dirs("/", transfer.path, transfer.uid, transfer.gid)
        dest = inroot.open_in_root(_root(), transfer.path, os.O_PATH | os.O_DIRECTORY)
    namespace.become(transfer.uid, transfer.gid, transfer.groups)
    extract(PipeReader(sys.stdin.fileno()), dest, transfer.allow_devices)


def stream_out(transfer: Transfer) -> None:
    """``tar -C dirname -c basename``; a path ending in ``/`` is archived as ``./``."""
    namespace.become(transfer.uid, transfer.gid, transfer.groups)
    archiver = Archiver(sys.stdout.fileno())
    root = _root()
    if transfer.path.endswith("/"):
        with failing_as(transfer.path):
            fd = inroot.open_in_root(root, transfer.path, os.O_RDONLY | os.O_DIRECTORY)
        archiver.tree(fd, ".")
    else:
        parent, name = posixpath.split(transfer.path)
        with failing_as(transfer.path):
            parent_fd = inroot.open_in_root(root, parent, os.O_PATH | os.O_DIRECTORY)
            os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        archiver.add(parent_fd, name, name)
    archiver.finish()


def _root() -> int:
    return os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def main() -> int:
    try:
        transfer = Transfer.from_json(sys.argv[1])
        os.umask(0)
        pipes.grow(sys.stdin.fileno() if transfer.direction == "in" else sys.stdout.fileno())
        try:
            namespace.enter(transfer.pidfd, transfer.user_namespace)
        except (namespace.EnterError, OSError) as e:
            raise TransferError(FAILED, f"entering the container: {e}") from None
        if transfer.direction == "in":
            stream_in(transfer)
        else:
            stream_out(transfer)
    except TransferError as e:
        os.write(2, (e.to_json() + "\n").encode())
        return 1
    except BrokenPipeError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

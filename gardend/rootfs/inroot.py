"""Path resolution inside a container's root, as the container would resolve it.

Joining host paths lets a symlink in the image point outside the container. These
helpers use openat2(RESOLVE_IN_ROOT), so ``..`` and absolute symlinks stay inside the
given root. They block, so callers run them in a thread.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

_SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_libc = ctypes.CDLL(None, use_errno=True)


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): an fd for ``path`` relative to ``dir_fd``, resolved as ``resolve`` says."""
    how = struct.pack("QQQ", flags | os.O_CLOEXEC, mode, resolve)
    while True:
        fd = _libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), how, len(how))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err), path)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """An fd for ``path`` resolved with ``root_fd`` as ``/``."""
    return openat2(root_fd, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, mode)


def read_file(root: str, path: str, limit: int = 16 << 20) -> bytes:
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, path, os.O_RDONLY)
    finally:
        os.close(root_fd)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def make_dirs(root: str, path: str, uid: int, gid: int, mode: int = 0o755) -> None:
    """``mkdir -p`` inside the root; directories it creates are owned by uid:gid."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = [p for p in path.split("/") if p]
        for i, name in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            try:
                os.close(open_in_root(root_fd, prefix, os.O_PATH | os.O_DIRECTORY))
                continue
            except FileNotFoundError:
                pass
            parent = open_in_root(root_fd, "/".join(parts[:i]), os.O_PATH | os.O_DIRECTORY)
            try:
                try:
                    os.mkdir(name, mode, dir_fd=parent)
                except FileExistsError:
                    continue
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)
    finally:
        os.close(root_fd)


def resolve(root: str, path: str) -> str:
    """``path`` as an absolute in-root path free of symlinks and ``..``, naming the file that
    the container would reach; ``FileNotFoundError`` if there is none.

    Joining the result to ``root`` gives a host path that stays inside ``root`` as long as
    nothing under ``root`` changes.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, path, os.O_PATH)
        try:
            real_root = os.readlink(f"/proc/self/fd/{root_fd}").rstrip("/")
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    if real == real_root or real == "/":
        return "/"
    if not real.startswith(real_root + "/"):
        raise OSError(errno.EXDEV, "resolved outside the root", path)
    return real[len(real_root) :]

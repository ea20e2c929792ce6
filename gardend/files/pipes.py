"""Blocking byte movers for the helper: exact reads from its stdin, copies without Python
buffers where the kernel allows (splice from a pipe, sendfile into one)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031
MAX_READ = 16 << 20
"""The most one ``read`` returns: tarfile reads whole headers, and a hostile archive
could declare a pax header of gigabytes."""
_ZEROS = bytes(CHUNK)


class BadStream(Exception):
    """The input ended early, or asked for an absurd header."""


class PipeReader:
    """A forward-only file over an fd that counts what it consumed.

    ``tarfile`` reads headers through ``read``/``tell``/``seek``; file data bypasses it
    through :meth:`copy_to`, which splices straight from the pipe into the target file.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = b""
        self._off = 0
        self._pos = 0
        self._splice = True
        self.last_read = b""
        """What the latest ``read`` returned: after tarfile reports the end of the archive,
        the block it took for the end marker."""

    def tell(self) -> int:
        return self._pos

    def _take(self, size: int) -> bytes:
        """Up to ``size`` buffered bytes, without copying the rest of the buffer."""
        data = self._buf[self._off : self._off + size]
        self._off += len(data)
        self._pos += len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        if not 0 <= size <= MAX_READ:
            raise BadStream(f"refusing to read a header of {size} bytes")
        parts = [self._take(size)]
        have = len(parts[0])
        while have < size:
            self._buf, self._off = os.read(self.fd, max(CHUNK, size - have)), 0
            if not self._buf:
                break
            parts.append(self._take(size - have))
            have += len(parts[-1])
        self.last_read = parts[0] if len(parts) == 1 else b"".join(parts)
        return self.last_read

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Skips forward; tarfile seeks only to pass over data it did not read."""
        target = offset if whence == os.SEEK_SET else self._pos + offset
        if target < self._pos or whence not in (os.SEEK_SET, os.SEEK_CUR):
            raise OSError(errno.ESPIPE, "cannot seek backwards in a stream")
        while self._pos < target:
            if not self.read(min(CHUNK, target - self._pos)):
                raise BadStream(f"stream ended at byte {self._pos}, expected {target}")
        return self._pos

    def copy_to(self, out_fd: int, size: int) -> None:
        """Moves exactly ``size`` bytes into ``out_fd``."""
        head = self._take(size)
        if head:
            write_all(out_fd, head)
            size -= len(head)
        while size > 0:
            moved = self._move(out_fd, min(size, CHUNK))
            if moved == 0:
                raise BadStream(f"stream ended at byte {self._pos}, {size} bytes short")
            self._pos += moved
            size -= moved

    def _move(self, out_fd: int, size: int) -> int:
        if self._splice:
            try:
                return os.splice(self.fd, out_fd, size)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self._splice = False
        data = os.read(self.fd, size)
        write_all(out_fd, data)
        return len(data)

    def drain(self) -> None:
        """Reads to the end, so that the writer never sees a broken pipe."""
        self._buf, self._off = b"", 0
        while os.read(self.fd, CHUNK):
            pass


class PipeWriter:
    """Gathers headers, padding and small files in a buffer and writes it in large pieces;
    large files go from their page cache straight to the pipe (sendfile). Small files are
    read into the buffer itself, so each byte is copied no more often than by tar. Nothing
    reaches the pipe before the buffer fills, a large file comes, or :meth:`flush`."""

    SMALL_FILE = 256 << 10

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray(CHUNK)
        self._view = memoryview(self._buf)
        self._pos = 0

    def _room(self, size: int) -> memoryview:
        """The next ``size`` bytes of the buffer, flushing it first if they do not fit."""
        if self._pos + size > len(self._buf):
            self.flush()
        self._pos += size
        return self._view[self._pos - size : self._pos]

    def write(self, data: bytes) -> None:
        if len(data) > len(self._buf):
            self.flush()
            write_all(self.fd, data)
        else:
            self._room(len(data))[:] = data

    def flush(self) -> None:
        write_all(self.fd, self._view[: self._pos])
        self._pos = 0

    def copy_file(self, in_fd: int, size: int) -> None:
        """Writes exactly ``size`` bytes of ``in_fd`` from its start; zeros if it shrank meanwhile."""
        if size > self.SMALL_FILE:
            self.flush()
            send_file(self.fd, in_fd, size)
            return
        room = self._room(size)
        done = 0
        while done < size and (got := os.preadv(in_fd, [room[done:]], done)):
            done += got
        room[done:] = bytes(size - done)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send_file(out_fd: int, in_fd: int, size: int) -> None:
    """Writes exactly ``size`` bytes of ``in_fd`` from its start; zeros if it shrank meanwhile.

    sendfile(2) where the file's filesystem supports it, plain reads where not.
    """
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(out_fd, in_fd, offset, min(size - offset, CHUNK))
            if sent == 0:
                break
            offset += sent
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
    while offset < size and (data := os.pread(in_fd, min(size - offset, CHUNK), offset)):
        write_all(out_fd, data)
        offset += len(data)
    while offset < size:
        pad = min(size - offset, CHUNK)
        write_all(out_fd, _ZEROS[:pad])
        offset += pad


def grow(fd: int) -> None:
    """Makes the pipe ``fd`` (if it is one) hold CHUNK bytes: fewer, larger reads and writes."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)

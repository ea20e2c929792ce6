"""Extracting a tar stream into a directory with the current process's ids and permissions.

Runs inside the container (see ``namespace``), so every path resolves as the container
resolves it and the kernel enforces the user's permissions. On top of that, member names
may not climb out of the destination (``..``), the last component of a path is never
followed (an existing symlink, fifo or device is replaced, not written through), and
no path passes through a /proc magic link.

Files belong to the extracting user, as with Guardian's ``tar --no-same-owner``; modes,
modification times and ``SCHILY.xattr`` extended attributes come from the archive. An
attribute the user may not set (``security.*`` as a non-root user) is skipped, as tar
does. A directory's own metadata is applied once the archive has left it, so a
read-only directory can still be filled first; memory stays bounded by the tree's depth.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from gardend.files.pipes import CHUNK, BadStream, PipeReader, write_all
from gardend.files.transfer import ARCHIVE, TransferError, failing_as, os_failure
from gardend.rootfs.inroot import RESOLVE_NO_MAGICLINKS, openat2

T = TypeVar("T")
XATTR_PREFIX = "SCHILY.xattr."
_SKIPPABLE_XATTR_ERRORS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}
Parts = tuple[str, ...]


@contextlib.contextmanager
def _doing(what: str) -> Iterator[None]:
    """Reports failures as errors about ``what``. A missing path is the archive's fault, and so
    are values the kernel cannot take (a NUL in a pax name, an mtime beyond 64 bits)."""
    try:
        with failing_as(what, missing=ARCHIVE):
            yield
    except (BadStream, ValueError, OverflowError) as e:
        raise TransferError(ARCHIVE, f"{what}: {e}") from None


def member_parts(name: str) -> Parts:
    """A member name as path components below the destination ("" and "." dropped)."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise TransferError(ARCHIVE, f"{name}: member name contains '..'")
    return parts


def _within(parts: Parts, directory: Parts) -> bool:
    return len(parts) > len(directory) and parts[: len(directory)] == directory


def _nanoseconds(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)


def _set_xattrs(fd: int, member: tarfile.TarInfo) -> None:
    for key, value in member.pax_headers.items():
        if key.startswith(XATTR_PREFIX):
            try:
                os.setxattr(fd, key[len(XATTR_PREFIX) :], value.encode("utf-8", "surrogateescape"))
            except OSError as e:
                if e.errno not in _SKIPPABLE_XATTR_ERRORS:
                    raise


def _open(source: PipeReader) -> tarfile.TarFile:
    """A TarFile over the stream, with its first header read. Seekable mode rather than
    ``r|``: PipeReader's forward seeks let file data bypass tarfile entirely."""
    try:
        with _doing("reading the tar stream"):
            # tarfile neither writes to nor closes a caller's file in read mode
            return tarfile.TarFile(fileobj=source, mode="r", encoding="utf-8", errors="surrogateescape")  # type: ignore[arg-type]
    except tarfile.TarError as e:
        raise TransferError(ARCHIVE, f"invalid tar stream: {e}") from None


@dataclass
class _Directory:
    """Metadata to give a directory once the archive has moved past it."""

    parts: Parts
    member: tarfile.TarInfo
    created: bool
    path: str = field(init=False)

    def __post_init__(self) -> None:
        self.path = "/".join(self.parts) or "."


class Extractor:
    def __init__(self, dest_fd: int, allow_devices: bool) -> None:
        self.dest_fd = dest_fd
        self.allow_devices = allow_devices
        self._parent: tuple[Parts, int] | None = None
        self._open: list[_Directory] = []

    def run(self, source: PipeReader) -> None:
        try:
            with _open(source) as tar:
                while (member := self._next(tar, source)) is not None:
                    tar.members.clear()  # type: ignore[attr-defined]  # a stream keeps no history
                    self._extract(tar, source, member)
            self._leave(())
            source.drain()
        finally:
            self._forget_parent()

    @staticmethod
    def _next(tar: tarfile.TarFile, source: PipeReader) -> tarfile.TarInfo | None:
        try:
            member = tar.next()
        except (tarfile.TarError, BadStream) as e:
            raise TransferError(ARCHIVE, f"invalid tar stream: {e}") from None
        if member is None and source.last_read.strip(b"\0"):
            raise TransferError(ARCHIVE, f"invalid tar header at byte {source.tell() - len(source.last_read)}")
        return member

    def _extract(self, tar: tarfile.TarFile, source: PipeReader, member: tarfile.TarInfo) -> None:
        parts = member_parts(member.name)
        self._leave(parts)
        if member.isdir():
            self._directory(parts, member)
            return
        if not parts:
            raise TransferError(ARCHIVE, f"{member.name}: only a directory may stand for the destination itself")
        if member.isreg():
            self._file(tar, source, parts, member)
        elif member.issym():
            self._symlink(parts, member)
        elif member.islnk():
            self._hardlink(parts, member)
        elif member.isfifo() or member.ischr() or member.isblk():
            self._node(parts, member)
        else:
            raise TransferError(ARCHIVE, f"{member.name}: unsupported member type {member.type!r}")

    # Directories

    def _directory(self, parts: Parts, member: tarfile.TarInfo) -> None:
        created = False
        if parts:
            parent, name = self._parent_of(parts, member.name)
            with _doing(f"{member.name}: cannot create directory"):
                try:
                    os.mkdir(name, 0o700, dir_fd=parent)
                    created = True
                except FileExistsError:
                    if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                        os.unlink(name, dir_fd=parent)
                        os.mkdir(name, 0o700, dir_fd=parent)
                        created = True
        self._open.append(_Directory(parts, member, created))

    def _leave(self, parts: Parts) -> None:
        """Finishes every open directory that ``parts`` is not inside, deepest first."""
        while self._open and not _within(parts, self._open[-1].parts):
            self._finish(self._open.pop())

    def _finish(self, d: _Directory) -> None:
        """Mode, xattrs and mtime of a directory. Those of one that already existed are
        kept when the user may not change them, as for the destination itself."""
        try:
            fd = openat2(self.dest_fd, d.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if d.created:
                raise os_failure(e, f"{d.member.name}: cannot open directory", missing=ARCHIVE) from None
            return
        try:
            with _doing(f"{d.member.name}: cannot set directory attributes"):
                try:
                    os.fchmod(fd, d.member.mode & 0o7777)
                    _set_xattrs(fd, d.member)
                    os.utime(fd, ns=(_nanoseconds(d.member), _nanoseconds(d.member)))
                except PermissionError:
                    if d.created:
                        raise
        finally:
            os.close(fd)

    # Other members

    def _file(self, tar: tarfile.TarFile, source: PipeReader, parts: Parts, member: tarfile.TarInfo) -> None:
        parent, name = self._parent_of(parts, member.name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with _doing(f"{member.name}: cannot create file"):
            fd = self._replacing(parent, name, lambda: os.open(name, flags, 0o600, dir_fd=parent))
        try:
            with _doing(f"{member.name}: cannot write file"):
                if member.sparse is None and source.tell() == member.offset_data:
                    source.copy_to(fd, member.size)
                else:
                    self._copy_through_tarfile(tar, member, fd)
                os.fchmod(fd, member.mode & 0o7777)
                _set_xattrs(fd, member)
                os.utime(fd, ns=(_nanoseconds(member), _nanoseconds(member)))
        finally:
            os.close(fd)

    @staticmethod
    def _copy_through_tarfile(tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
        """Sparse members: tarfile knows where the holes are."""
        data = tar.extractfile(member)
        if data is None:
            raise TransferError(ARCHIVE, f"{member.name}: no data")
        while chunk := data.read(CHUNK):
            write_all(fd, chunk)

    def _symlink(self, parts: Parts, member: tarfile.TarInfo) -> None:
        parent, name = self._parent_of(parts, member.name)
        with _doing(f"{member.name}: cannot create symlink"):
            self._replacing(parent, name, lambda: os.symlink(member.linkname, name, dir_fd=parent))
            os.utime(name, ns=(_nanoseconds(member), _nanoseconds(member)), dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, parts: Parts, member: tarfile.TarInfo) -> None:
        target = member_parts(member.linkname)
        if not target:
            raise TransferError(ARCHIVE, f"{member.name}: hard link to the destination itself")
        parent, name = self._parent_of(parts, member.name)
        what = f"{member.name}: cannot link to {member.linkname}"
        with _doing(what):
            target_dir = self._open_dir(target[:-1], create=False)
        try:
            with _doing(what):
                source_st = os.stat(target[-1], dir_fd=target_dir, follow_symlinks=False)
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                    if (st.st_dev, st.st_ino) == (source_st.st_dev, source_st.st_ino):
                        return

                def link() -> None:
                    os.link(target[-1], name, src_dir_fd=target_dir, dst_dir_fd=parent, follow_symlinks=False)

                self._replacing(parent, name, link)
        finally:
            os.close(target_dir)

    def _node(self, parts: Parts, member: tarfile.TarInfo) -> None:
        if (member.ischr() or member.isblk()) and not self.allow_devices:
            raise TransferError(ARCHIVE, f"{member.name}: device nodes cannot be created in unprivileged containers")
        parent, name = self._parent_of(parts, member.name)
        kind = stat.S_IFIFO if member.isfifo() else stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        device = 0 if member.isfifo() else os.makedev(member.devmajor, member.devminor)
        with _doing(f"{member.name}: cannot create special file"):
            self._replacing(parent, name, lambda: os.mknod(name, kind | (member.mode & 0o7777), device, dir_fd=parent))
            os.utime(name, ns=(_nanoseconds(member), _nanoseconds(member)), dir_fd=parent, follow_symlinks=False)

    @staticmethod
    def _replacing(parent: int, name: str, make: Callable[[], T]) -> T:
        """``make()``, after removing what stands at ``name`` if it is in the way.

        Like tar: a file or symlink is unlinked, never opened, so nothing it points to
        is touched; an empty directory is removed, a full one is an error.
        """
        try:
            return make()
        except FileExistsError:
            if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                os.rmdir(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)
            return make()

    # Parent directories

    def _parent_of(self, parts: Parts, member_name: str) -> tuple[int, str]:
        """An fd for the directory holding ``parts``, created if missing, and the last name.

        Consecutive members usually share a directory, so the last one stays open.
        """
        key = parts[:-1]
        if self._parent is None or self._parent[0] != key:
            self._forget_parent()
            with _doing(f"{member_name}: cannot create parent directory"):
                self._parent = (key, self._open_dir(key, create=True))
        return self._parent[1], parts[-1]

    def _forget_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def _open_dir(self, parts: Parts, create: bool) -> int:
        flags = os.O_PATH | os.O_DIRECTORY
        try:
            return openat2(self.dest_fd, "/".join(parts) or ".", flags, RESOLVE_NO_MAGICLINKS)
        except FileNotFoundError:
            if not create:
                raise
        fd = os.dup(self.dest_fd)
        try:
            for name in parts:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=fd)
                fd, parent = openat2(fd, name, flags, RESOLVE_NO_MAGICLINKS), fd
                os.close(parent)
        except BaseException:
            os.close(fd)
            raise
        return fd


def extract(source: PipeReader, dest_fd: int, allow_devices: bool) -> None:
    """Extracts the tar stream ``source`` into the directory ``dest_fd``."""
    Extractor(dest_fd, allow_devices).run(source)

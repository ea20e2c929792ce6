"""Writing a tar stream of a file or directory tree, as ``tar -C DIR -c NAME`` would.

Runs inside the container with the user's ids, like extraction. Every name is opened
relative to its directory's fd without following a final symlink, so a tree that
changes while it is archived cannot lead the walk anywhere else. Entries carry numeric
ids only: looking names up would load the container's NSS modules into this process.
Directories are walked in sorted order, depth first, with one open fd per level. Kernel
pseudo-filesystems (a container's /proc, /sys, /dev/pts, ...) are archived as empty
directories: their files are not data, and reading some of them has side effects.
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct
import tarfile
from collections.abc import Iterator

from gardend.files.extract import XATTR_PREFIX
from gardend.files.pipes import PipeWriter
from gardend.files.transfer import failing_as

_END = bytes(2 * tarfile.BLOCKSIZE)
_PSEUDO_FILESYSTEMS = {
    0x9FA0,  # proc
    0x62656572,  # sysfs
    0x1CD1,  # devpts
    0x19800202,  # mqueue
    0x27E0EB,  # cgroup
    0x63677270,  # cgroup2
    0x73636673,  # securityfs
    0x64626720,  # debugfs
    0x74726163,  # tracefs
    0xCAFE4A11,  # bpf
    0x6165676C,  # pstore
    0x42494E4D,  # binfmt_misc
    0x65735543,  # fusectl
    0x62656570,  # configfs
}
_libc = ctypes.CDLL(None, use_errno=True)
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12s")
_CHECKSUM = slice(148, 156)
_TYPES = {
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
}


def _is_pseudo_filesystem(fd: int) -> bool:
    """fstatfs(2)'s f_type, the first word of struct statfs, names the filesystem."""
    buf = (ctypes.c_long * 32)()
    if _libc.fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return buf[0] in _PSEUDO_FILESYSTEMS


def _octal(value: int, size: int) -> bytes:
    return b"%0*o\0" % (size - 1, value)


def header_bytes(info: tarfile.TarInfo) -> bytes:
    """``info.tobuf(PAX_FORMAT)``, built directly when a plain ustar header suffices.

    tarfile's general path costs tens of microseconds a member, which is most of the time
    spent on a tree of small files; members that need pax records still take it.
    """
    name = info.name + "/" if info.isdir() and not info.name.endswith("/") else info.name
    if (
        info.pax_headers
        or not (name.isascii() and info.linkname.isascii())
        or max(len(name), len(info.linkname)) > 100
        or max(info.uid, info.gid, info.devmajor, info.devminor) >= 8**7
        or not 0 <= int(info.mtime) < 8**11
        or info.size >= 8**11
    ):
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    device = info.ischr() or info.isblk()
    fields = (
        name.encode(), _octal(info.mode & 0o7777, 8), _octal(info.uid, 8), _octal(info.gid, 8),
        _octal(info.size, 12), _octal(int(info.mtime), 12), b" " * 8, info.type, info.linkname.encode(),
        tarfile.POSIX_MAGIC, b"", b"", _octal(info.devmajor, 8) if device else b"",
        _octal(info.devminor, 8) if device else b"", b"", b"",
    )  # fmt: skip
    header = bytearray(_USTAR.pack(*fields))
    header[_CHECKSUM] = b"%06o\0 " % sum(header)
    return bytes(header)


def _xattrs(fd: int) -> dict[str, str]:
    return {XATTR_PREFIX + name: os.getxattr(fd, name).decode("utf-8", "surrogateescape") for name in os.listxattr(fd)}


class Archiver:
    def __init__(self, out_fd: int) -> None:
        self.out = PipeWriter(out_fd)
        self._links: dict[tuple[int, int], str] = {}

    def _header(self, name: str, st: os.stat_result, **extra: object) -> None:
        info = tarfile.TarInfo(name)
        info.type = _TYPES[stat.S_IFMT(st.st_mode)]
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        if info.ischr() or info.isblk():
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        for key, value in extra.items():
            setattr(info, key, value)
        self.out.write(header_bytes(info))

    def add(self, dir_fd: int, name: str, arcname: str) -> None:
        """Archives ``name`` in ``dir_fd`` (and, for a directory, all below it) as ``arcname``."""
        fd = self._visit(dir_fd, name, arcname)
        if fd is not None:
            self.tree(fd, arcname)

    def tree(self, fd: int, arcname: str) -> None:
        """Archives the directory ``fd`` (which this closes) and everything below it."""
        stack: list[tuple[int, str, Iterator[str]]] = [(fd, arcname, iter(()))]
        try:
            stack[-1] = (fd, arcname, self._directory(fd, arcname))
            while stack:
                parent, prefix, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(stack.pop()[0])
                    continue
                child = f"{prefix}/{name}"
                sub = self._visit(parent, name, child)
                if sub is not None:
                    stack.append((sub, child, iter(())))
                    stack[-1] = (sub, child, self._directory(sub, child))
        finally:
            for open_fd, _, _ in stack:
                os.close(open_fd)

    def _visit(self, parent: int, name: str, arcname: str) -> int | None:
        """Archives a non-directory; for a directory, returns an fd to walk it with."""
        with failing_as(f"{arcname}: cannot archive"):
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                self._entry(parent, name, arcname, st)
                return None
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)

    def _directory(self, fd: int, arcname: str) -> Iterator[str]:
        """Writes a directory's header; returns the names of the entries to archive.

        The directory is read first: one the user may not read fails before any byte of it
        is written, so a source that is such a directory is still answered with an error.
        """
        with failing_as(f"{arcname}: cannot archive"):
            names = [] if _is_pseudo_filesystem(fd) else sorted(os.listdir(fd))
            self._header(arcname, os.fstat(fd), pax_headers=_xattrs(fd))
            return iter(names)

    def _entry(self, parent: int, name: str, arcname: str, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode):
            self._file(parent, name, arcname)
        elif stat.S_ISLNK(st.st_mode):
            self._header(arcname, st, linkname=os.readlink(name, dir_fd=parent))
        elif stat.S_IFMT(st.st_mode) in _TYPES:
            self._header(arcname, st)

    def _file(self, parent: int, name: str, arcname: str) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._header(arcname, st)
                return
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                self._header(arcname, st, type=tarfile.LNKTYPE, linkname=self._links[key])
                return
            if st.st_nlink > 1:
                self._links[key] = arcname
            self._header(arcname, st, size=st.st_size, pax_headers=_xattrs(fd))
            self.out.copy_file(fd, st.st_size)
            self.out.write(bytes(-st.st_size % tarfile.BLOCKSIZE))
        finally:
            os.close(fd)

    def finish(self) -> None:
        self.out.write(_END)
        self.out.flush()

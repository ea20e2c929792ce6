"""Entering a container as a transfer helper: its mount (and user) namespace, then its user.

Only a single-threaded process may join a user namespace, and after joining, files on
the host (Python modules included) are out of reach or, worse, replaced by whatever the
container put at the same paths. So the helper imports everything first and then stops
importing altogether.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
_libc = ctypes.CDLL(None, use_errno=True)


class EnterError(Exception):
    pass


def enter(pidfd: int, user_namespace: bool) -> None:
    """Joins the namespaces of the process behind ``pidfd`` as its root.

    setns(2) with a pidfd switches all namespaces at once, so a pid reused meanwhile
    cannot redirect us. Afterwards ``/`` and the working directory are the container's
    root, and in a user namespace our ids are the container's root ids.
    """
    flags = CLONE_NEWNS | (CLONE_NEWUSER if user_namespace else 0)
    if _libc.setns(pidfd, flags) != 0:
        err = ctypes.get_errno()
        raise EnterError(f"joining the container's namespaces: {os.strerror(err)}")
    os.close(pidfd)
    _stop_imports()
    become(0, 0, ())


def become(uid: int, gid: int, groups: tuple[int, ...]) -> None:
    """Takes on the ids of a container user; a non-root uid drops every capability."""
    os.setgroups(list(groups))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _stop_imports() -> None:
    """Leaves only the built-in and frozen importers: no module comes from the container."""
    sys.meta_path[:] = [importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter]
    sys.path[:] = []
    sys.path_hooks[:] = []
    sys.path_importer_cache.clear()

"""Where gardend listens: TCP (plain on loopback, or TLS with client certificates for
workers reached over a network) and, optionally, a unix socket with a chosen file mode.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import socket
import ssl
import tempfile

from aiohttp import web

from gardend.config import Config

log = logging.getLogger("gardend")


class ListenerError(Exception):
    pass


def tls_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """A server context that refuses clients without a certificate signed by ``ca``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as e:
        raise ListenerError(f"loading TLS files (--tls-cert {cert}, --tls-key {key}, --tls-ca {ca}): {e}") from None
    return ctx


def unix_socket(path: str, mode: int) -> socket.socket:
    """A listening unix socket at ``path`` that never exists there with a wider mode.

    It is bound in a private directory, given ``mode``, then renamed into place.
    """
    parent = os.path.dirname(os.path.abspath(path))
    staging = tempfile.mkdtemp(prefix=".gardend-sock-", dir=parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staged = os.path.join(staging, "s")
        sock.bind(staged)
        os.chmod(staged, mode)
        os.rename(staged, path)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise ListenerError(f"listening on unix socket {path}: {e}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sock


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return ip == "localhost"


async def load_tls(config: Config) -> ssl.SSLContext | None:
    """The TLS context the flags ask for, loaded before anything starts so bad files fail fast."""
    if not config.tls_cert:
        return None
    return await asyncio.to_thread(tls_context, config.tls_cert, config.tls_key, config.tls_ca)


async def sites(runner: web.AppRunner, config: Config, ssl_context: ssl.SSLContext | None) -> list[web.BaseSite]:
    if ssl_context is None and not _is_loopback(config.bind_ip):
        log.warning(
            "listening without TLS on a non-loopback address: anyone who can reach it controls the containers",
            extra={"address": config.bind_ip},
        )
    result: list[web.BaseSite] = [
        web.TCPSite(runner, config.bind_ip, config.bind_port, ssl_context=ssl_context),
    ]
    if config.bind_socket:
        sock = await asyncio.to_thread(unix_socket, config.bind_socket, config.bind_socket_mode)
        result.append(web.SockSite(runner, sock))
    return result

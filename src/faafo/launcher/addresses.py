"""Where ``faafo up``'s API listens, and the URLs that reach it.

The API may listen on one specific address (``127.0.0.2``, ``10.0.0.5``, ``::1``):
the workers must then be sent there, not to 127.0.0.1, where nothing answers. A
wildcard (``0.0.0.0``, ``::``) is reached through the loopback. IPv6 literals go in
brackets in URLs, both the workers' and the one printed for people.
"""

from __future__ import annotations

import ipaddress
import socket


def url_host(address: str) -> str:
    """``address`` as the host part of a URL: IPv6 literals in brackets."""
    try:
        is_v6 = ipaddress.ip_address(address.strip("[]")).version == 6
    except ValueError:
        return address  # a host name
    return f"[{address.strip('[]')}]" if is_v6 else address


def _ipv6_loopback() -> bool:
    """Whether this machine has ::1 (containers often have no IPv6 at all)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def worker_endpoint(listen_address: str, port: int) -> str:
    """The URL workers on this machine reach the API at.

    A specific address is used as is (an API on 127.0.0.2 or 10.0.0.5 does not
    answer on 127.0.0.1); a wildcard is reached through the loopback of its family.
    """
    address = listen_address.strip("[]")
    if address in ("", "0.0.0.0"):
        address = "127.0.0.1"
    elif address == "::":
        address = "::1" if _ipv6_loopback() else "127.0.0.1"
    return f"http://{url_host(address)}:{port}"


def public_url(listen_address: str, port: int) -> str:
    """The URL printed for people (and under which the CLI's token is recorded)."""
    local = ("127.0.0.1", "0.0.0.0", "::", "")
    host = "localhost" if listen_address.strip("[]") in local else url_host(listen_address)
    return f"http://{host}:{port}"


def can_listen(address: str, port: int) -> str | None:
    """None if ``address:port`` can be bound now, else why not (one line)."""
    address = address.strip("[]")
    try:
        infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return f"cannot resolve {address!r}: {error.strerror}"
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as error:
            return error.strerror or str(error)
    return None

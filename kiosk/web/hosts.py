"""The Host header check: the kiosk answers only to its own names, against DNS rebinding.

A web page on some other site can make the browser of anyone on the health
centre's network resolve the page's own name to the kiosk's address (DNS
rebinding) and then talk to the kiosk *as that site*: the same-origin rule
and CSRF tokens no longer protect it. The Host header gives it away: it
still names the other site. So every request (pages, API, the MJPEG stream,
static files, even a 404) must name one of the kiosk's hosts, else 400.

Allowed: ``web.host`` (the bind address), 127.0.0.1, localhost, [::1], this
machine's hostname (and ``HOSTNAME.local``), plus ``web.allowed_hosts``.
When the kiosk listens on every address (0.0.0.0 or ::) any IP address is
allowed too: a rebinding attack needs a *name*, and an address in the Host
header means the browser's page really came from that address.

>>> check = HostCheck.for_server("127.0.0.1", extra=("kiosk.example",), hostname="pi")
>>> [check.allows(h) for h in ("127.0.0.1:8080", "LOCALHOST", "[::1]:80", "pi.local", "kiosk.example")]
[True, True, True, True, True]
>>> [check.allows(h) for h in ("evil.example", "10.0.0.2", "", "127.0.0.1.evil.example")]
[False, False, False, False]
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from flask import request

from .errors import WebError

__all__ = ["HostCheck"]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", "[::]", ""})


def _bare(host: str) -> str:
    """``host[:port]`` without the port, lower case, brackets kept on IPv6."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, _, _port = host.partition(":")
    return name.rstrip(".")  # "localhost." is the same name as "localhost"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostCheck:
    names: frozenset[str]
    any_ip: bool = False

    @classmethod
    def for_server(cls, bind: str, *, extra: Iterable[str] = (), hostname: str | None = None) -> HostCheck:
        names = {*LOOPBACK_NAMES, *(_bare(h) for h in extra)}
        if bind not in WILDCARD_ADDRESSES:
            names.add(_bare(f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind))
        if hostname:
            names |= {_bare(hostname), _bare(hostname) + ".local"}
        return cls(frozenset(names), any_ip=bind in WILDCARD_ADDRESSES)

    def allows(self, host: str) -> bool:
        bare = _bare(host)
        if not bare:
            return False
        return bare in self.names or (self.any_ip and _is_ip(bare))

    def protect(self) -> None:
        """``before_request`` hook: 400 ``host_not_allowed`` for a Host this kiosk does not answer to."""
        if not self.allows(request.headers.get("Host", "")):
            raise WebError(400, "host_not_allowed")

"""ICE configuration: configured STUN/TURN servers only, and the one place that sets the host addresses offered.

aioice gathers host candidates from ``aioice.ice.get_host_addresses``, which never returns 127.0.0.1. Media servers
behind NAT announce chosen addresses; we do the same with :func:`offered_host_addresses`, a context manager that
scopes the choice to the peers created inside it (a context variable, copied into aiortc's gathering tasks), so two
services in one process never see each other's choice.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Sequence

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

log = logging.getLogger(__name__)

_OFFERED: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("offered_hosts", default=None)


def _install() -> None:
    current: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses
    if getattr(current, "_feqa_override", False):
        return
    original = current

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = _OFFERED.get()
        if chosen is None:
            return list(original(use_ipv4, use_ipv6))
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    host_addresses._feqa_override = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = host_addresses


@contextlib.contextmanager
def offered_host_addresses(addresses: Sequence[str]) -> Iterator[None]:
    """Within this block, peers that gather candidates offer exactly ``addresses`` (empty: aioice's default)."""
    _install()
    token = _OFFERED.set(tuple(addresses) if addresses else None)
    try:
        yield
    finally:
        _OFFERED.reset(token)


def rtc_configuration(
    urls: Sequence[str], username: str | None = None, credential: str | None = None
) -> RTCConfiguration:
    """An aiortc configuration with exactly the given servers (none: no STUN, no TURN, host candidates only)."""
    servers = [RTCIceServer(urls=list(urls), username=username, credential=credential)] if urls else []
    return RTCConfiguration(iceServers=servers)

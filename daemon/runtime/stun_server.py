"""The embedded STUN responder as a trio service: one UDP socket, Binding requests only.

:func:`serve_stun` (or :meth:`StunServer.serve`) binds ``stun.listen``, reports the bound port
through ``task_status`` and answers until cancelled. The codec is :mod:`daemon.ice.stun`; what
gets no reply gets nothing at all (no error responses).

Rate limits: each source gets ``rate`` answers per second with a burst of ``burst`` (default twice
the rate), then its requests are dropped silently; every source shares a global budget on top
(``global_rate``). A source is an IPv4 address, or the /64 of an IPv6 address (one host commonly
owns a whole /64); IPv4-mapped IPv6 counts as IPv4. At most ``max_sources`` sources are tracked,
least recently seen forgotten first, so a flood from spoofed addresses costs bounded memory.
Since a reply goes to the request's source address, the per-source limit is also what bounds how
much this responder can be made to send to a spoofed victim (a reply is 40 bytes for IPv4, 52 for
IPv6, against at least 20 for a request).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

import trio

from daemon.ice.rate_limit import TokenBuckets
from daemon.ice.stun import Ignore, binding_success_response, parse_binding_request

from .config import Listen

__all__ = ["StunServer", "StunStatistics", "serve_stun", "source_key"]

log = logging.getLogger("doorstep.stun")

_RECEIVE_SIZE = 2048
"""Bigger than any STUN request worth answering; a longer datagram is truncated, then ignored as
malformed (its length field no longer matches)."""


@dataclass(frozen=True, slots=True)
class StunStatistics:
    """Counters since the responder started, and the sources it tracks now."""

    received: int
    answered: int
    rate_limited: int
    ignored: Mapping[Ignore, int]
    """Datagrams that got no reply, per reason (every :class:`Ignore` present)."""
    tracked_sources: int

    def report(self) -> dict[str, object]:
        """The figures as a stats section (``_total`` counters, like the signaling section)."""
        return {
            "received_total": self.received,
            "answered_total": self.answered,
            "rate_limited_total": self.rate_limited,
            "ignored_total": {"reason": {kind.value: n for kind, n in self.ignored.items()}},
            "tracked_sources": self.tracked_sources,
        }


def source_key(address: str) -> str:
    """The rate-limit key of a source address: IPv4 as is (mapped IPv6 too), IPv6 by /64."""
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class StunServer:
    """The STUN responder; see the module docstring.

    Args:
        rate: answers per second per source (``stun.rate``).
        burst: answers a source may get at once; default ``2 * rate``.
        global_rate: answers per second for all sources together (burst twice that); None for
            no global limit.
        max_sources: sources tracked by the per-source limiter.
        clock: monotonic seconds; default trio's clock (so ``MockClock`` drives it in tests).
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: float | None = None,
        global_rate: float | None = 1000.0,
        max_sources: int = 4096,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._per_source = TokenBuckets(
            rate=rate, burst=max(1.0, 2 * rate) if burst is None else burst, max_keys=max_sources
        )
        self._global = (
            None
            if global_rate is None
            else TokenBuckets(rate=global_rate, burst=max(1.0, 2 * global_rate), max_keys=1)
        )
        self._clock = clock
        self._received = 0
        self._answered = 0
        self._rate_limited = 0
        self._ignored = dict.fromkeys(Ignore, 0)

    def statistics(self) -> StunStatistics:
        return StunStatistics(
            received=self._received,
            answered=self._answered,
            rate_limited=self._rate_limited,
            ignored=dict(self._ignored),
            tracked_sources=len(self._per_source),
        )

    def handle(self, datagram: bytes, address: str, port: int) -> bytes | None:
        """The reply to one datagram from ``address``:``port``, or None (counted either way).

        Parsing comes first, so garbage neither spends tokens nor takes a limiter slot.
        """
        self._received += 1
        request = parse_binding_request(datagram)
        if isinstance(request, Ignore):
            self._ignored[request] += 1
            return None
        now = self._clock()
        if not self._per_source.allow(source_key(address), now=now) or (
            self._global is not None and not self._global.allow(None, now=now)
        ):
            self._rate_limited += 1
            return None
        self._answered += 1
        return binding_success_response(request.transaction_id, address, port)

    async def serve(
        self,
        listen: Listen,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Answer on UDP ``listen`` until cancelled; ``task_status.started(port)`` once bound.

        ``listen.host`` '' binds every interface (IPv6 and IPv4 on one dual-stack socket, or
        IPv4 alone where IPv6 is unavailable); port 0 picks a free port. Raises OSError if the
        socket cannot be bound. Errors sending one reply (an unreachable source, say) drop that
        reply only.
        """
        with await _bind(listen) as sock:
            port = sock.getsockname()[1]
            log.info("STUN responder listening on UDP %s", Listen(listen.host, port))
            task_status.started(port)
            while True:
                try:
                    datagram, source = await sock.recvfrom(_RECEIVE_SIZE)
                except ConnectionError:  # an ICMP error for an earlier reply, on some systems
                    continue
                reply = self.handle(datagram, source[0], source[1])
                if reply is None:
                    continue
                try:
                    await sock.sendto(reply, source)
                except OSError as exc:
                    log.debug("STUN reply not sent: %s", exc)


async def _bind(listen: Listen) -> trio.socket.SocketType:
    if not listen.host:
        try:
            sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            pass
        else:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                await sock.bind(("::", listen.port))
            except OSError:
                sock.close()
            else:
                return sock
        host = "0.0.0.0"
    else:
        host = listen.host
    family, kind, proto, _, address = (
        await trio.socket.getaddrinfo(host, listen.port, type=socket.SOCK_DGRAM)
    )[0]
    sock = trio.socket.socket(family, kind, proto)
    try:
        await sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_stun(
    listen: Listen,
    rate: float,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    **options: object,
) -> NoReturn:
    """Run a :class:`StunServer` (``rate`` and ``options`` as its arguments) on ``listen``;
    see :meth:`StunServer.serve`."""
    server = StunServer(rate=rate, **options)  # type: ignore[arg-type]
    await server.serve(listen, task_status=task_status)


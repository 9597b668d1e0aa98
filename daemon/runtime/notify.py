"""The systemd service-manager protocol (``sd_notify(3)``), spoken directly: no libsystemd needed.

systemd starts ``Type=notify`` services with ``NOTIFY_SOCKET`` set to an ``AF_UNIX`` datagram socket
(a path, or an abstract name written with a leading ``@``). A service sends newline-separated
``KEY=VALUE`` lines to it: ``READY=1`` once it serves, ``STATUS=...`` for ``systemctl status``,
``STOPPING=1`` when it begins to shut down, and ``WATCHDOG=1`` at least every ``WATCHDOG_USEC``
microseconds when the unit has ``WatchdogSec=`` (``WATCHDOG_PID``, when set, names the process the
watchdog is meant for; any other process ignores it). systemd identifies the sender by the
credentials the kernel attaches, so ``NotifyAccess=main`` accepts only the daemon itself.

Without ``NOTIFY_SOCKET`` (a terminal, the tests) every call here does nothing and says so.

:func:`serve_watchdog` is a service for the root nursery: it pings from the trio event loop itself,
so a loop that is stuck (a blocking call, a busy callback on the asyncio host loop) stops the pings
and systemd restarts the daemon (``Restart=on-failure`` treats a watchdog timeout as a failure).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

import trio

__all__ = ["NotifyError", "notify", "notify_address", "notify_best_effort", "serve_watchdog", "watchdog_interval"]

log = logging.getLogger("doorstep.notify")

SEND_TIMEOUT = 1.0
"""Longest a notification may block when systemd's socket buffer is full."""


class NotifyError(OSError):
    """``NOTIFY_SOCKET`` is set but a notification could not be delivered to it."""


def notify_address(environ: Mapping[str, str] | None = None) -> str | bytes | None:
    """The socket address ``NOTIFY_SOCKET`` names, as ``socket.sendto`` takes it; None if unset.

    ``/path`` is a filesystem socket, ``@name`` an abstract one (``b"\\0name"``). Raises NotifyError
    for any other form (systemd also knows ``vsock:``, which only VMs' managers use).
    """
    environ = os.environ if environ is None else environ
    value = environ.get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return b"\0" + os.fsencode(value[1:])
    raise NotifyError(f"NOTIFY_SOCKET={value!r} is neither a socket path nor an @abstract name")


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` (``"READY=1"``, ``"STATUS=..."``) in one datagram to ``NOTIFY_SOCKET``.

    Returns False (and sends nothing) if ``NOTIFY_SOCKET`` is unset, True once sent.
    Raises NotifyError (an OSError) if it is set but nothing listens there, the socket is of the
    wrong kind, or systemd's buffer stayed full for :data:`SEND_TIMEOUT` seconds. A line may not
    contain a newline (ValueError): it would read as a second, forged, assignment.
    """
    for line in lines:
        if "\n" in line or "=" not in line:
            raise ValueError(f"{line!r} is not one KEY=VALUE line")
    address = notify_address(environ)
    if address is None:
        return False
    payload = "\n".join(lines).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT)
            sock.sendto(payload, address)
    except OSError as exc:
        shown = address if isinstance(address, str) else "@" + os.fsdecode(address[1:])
        raise NotifyError(exc.errno, f"cannot notify the service manager at {shown}: {exc.strerror or exc}") from exc
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds that systemd asks of this process; None if there is none.

    None when ``WATCHDOG_USEC`` is unset, not a positive integer, or ``WATCHDOG_PID`` names another
    process (the variable was inherited by a child of the watched process).
    """
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


async def serve_watchdog(
    *, environ: Mapping[str, str] | None = None, task_status: trio.TaskStatus[float | None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Send ``WATCHDOG=1`` every half :func:`watchdog_interval`, from this trio task, until cancelled.

    Reports the interval (None: no watchdog was asked for, and it returns at once). The first ping
    goes out before ``started``: start it first, so that the rest of the start-up is covered. A ping that cannot be delivered is logged (once per run of failures) and retried at the next
    tick: a service manager that went away must not take the daemon down with it.
    """
    interval = watchdog_interval(environ)
    if interval is None or notify_address(environ) is None:
        task_status.started(None)
        return
    failing = False
    log.debug("watchdog: pinging every %.3g s", interval / 2)
    started = False
    while True:
        try:
            notify("WATCHDOG=1", environ=environ)
        except NotifyError as exc:
            if not failing:
                log.warning("watchdog ping failed (will keep trying): %s", exc)
            failing = True
        else:
            failing = False
        if not started:
            task_status.started(interval)
            started = True
        await trio.sleep(interval / 2)


def notify_best_effort(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """:func:`notify`, but a delivery failure is logged (warning) instead of raised: for ``STATUS=``
    and ``STOPPING=1``, which must never stop a daemon that is running or shutting down."""
    try:
        return notify(*lines, environ=environ)
    except NotifyError as exc:
        log.warning("%s", exc)
        return False

"""A throwaway network namespace for tests that aim at private or metadata addresses.

:func:`isolated_namespace` creates ``doorturn-<pytest pid>-<n>`` with ``lo`` up and a veth pair whose
both ends stay inside it, gives it addresses, and adds no default route: a packet to anything
outside its own addresses dies with "network unreachable" and can never leave the machine. On exit
every process still inside is killed and the namespace deleted, also after a failure; namespaces a
killed test run left behind are deleted the next time.

:meth:`Namespace.socket` makes a socket *inside* the namespace from this process (``setns`` on a
short-lived thread: a socket stays in the namespace it was created in), so a test can talk to a
server in the namespace without running its client there.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Namespace", "isolated_namespace"]

PREFIX = "doorturn-"
CLONE_NEWNET = 0x40000000
_counter = itertools.count()


@dataclass(frozen=True)
class Namespace:
    name: str

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        """argv that runs a command inside (``ip netns exec`` execs it: the pid stays the same)."""
        return ("ip", "netns", "exec", self.name)

    def run(self, *argv: str) -> str:
        """Run ``argv`` inside; its stdout. Raises CalledProcessError with its stderr."""
        return subprocess.run([*self.exec_prefix, *argv], check=True, capture_output=True, text=True).stdout

    def socket(self, family: int, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket created inside the namespace."""
        made: list[socket.socket | BaseException] = []

        def create() -> None:
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.setns(fd, CLONE_NEWNET) != 0:  # this thread only
                        errno = ctypes.get_errno()
                        raise OSError(errno, os.strerror(errno))
                    made.append(socket.socket(family, kind))
                finally:
                    os.close(fd)
            except BaseException as exc:  # handed to the caller's thread
                made.append(exc)

        thread = threading.Thread(target=create, name=f"setns {self.name}")
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        return made[0]

    def pids(self) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


def _remove(name: str) -> None:
    ns = Namespace(name)
    for pid in ns.pids():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


def remove_stale_namespaces() -> None:
    """Delete ``doorturn-*`` namespaces whose pytest process is gone."""
    for path in Path("/run/netns").glob(PREFIX + "*"):
        owner = path.name[len(PREFIX):].partition("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _remove(path.name)


@contextmanager
def isolated_namespace(addresses: Sequence[str]) -> Iterator[Namespace]:
    """A namespace with ``lo`` and ``veth0`` (peer ``veth1``, also inside) up, ``addresses``
    (``ip/prefix``) on ``veth0``, and no default route. Deleted on exit, whatever happened."""
    remove_stale_namespaces()
    name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
        for address in addresses:
            extra = ("nodad",) if ":" in address else ()
            _ip("-n", name, "addr", "add", address, "dev", "veth0", *extra)
        _ip("-n", name, "link", "set", "veth0", "up")
        _ip("-n", name, "link", "set", "veth1", "up")
        yield Namespace(name)
    finally:
        _remove(name)

"""Measure a NAT's UDP behaviour from both sides (run as ``python -m tests.netns.udp_probe``).

``server ADDR1:PORT1 ADDR2:PORT2``: two "STUN-like" endpoints on the internet. Each answers a
datagram with the source address it saw (``ip:port``). A datagram ``poke IP:PORT`` makes the server
send ``unsolicited`` to IP:PORT from a *third* socket (ADDR1, PORT1+1): an endpoint the client never
sent to. Prints ``ready`` once bound; runs until killed.

``client ADDR1:PORT1 ADDR2:PORT2``: one socket sends to both endpoints, asks the first to poke the
mapping it reported, and prints one JSON line: the local port, the two mapped addresses, and whether
the unsolicited datagram got in.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time


def _parse(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def server(first: tuple[str, int], second: tuple[str, int]) -> None:
    socks = []
    for addr in (first, second):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(addr)
        socks.append(s)
    third = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    third.bind((first[0], first[1] + 1))
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select(socks, [], [])
        for s in readable:
            data, peer = s.recvfrom(2048)
            if data.startswith(b"poke "):
                third.sendto(b"unsolicited", _parse(data[5:].decode()))
            else:
                s.sendto(f"{peer[0]}:{peer[1]}".encode(), peer)


def _ask(sock: socket.socket, dest: tuple[str, int], payload: bytes, timeout: float = 2.0) -> str | None:
    deadline = time.monotonic() + timeout
    sock.sendto(payload, dest)
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, peer = sock.recvfrom(2048)
        except socket.timeout:
            return None
        if peer == dest:
            return data.decode()
    return None


def client(first: tuple[str, int], second: tuple[str, int]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    mapped = [_ask(sock, first, b"hello"), _ask(sock, second, b"hello")]
    unsolicited = False
    if mapped[0] is not None:
        sock.sendto(f"poke {mapped[0]}".encode(), first)
        sock.settimeout(1.0)
        try:
            while True:
                data, _ = sock.recvfrom(2048)
                if data == b"unsolicited":
                    unsolicited = True
                    break
        except socket.timeout:
            pass
    print(json.dumps({"local_port": sock.getsockname()[1], "mapped": mapped, "unsolicited_received": unsolicited}))


if __name__ == "__main__":
    mode, a, b = sys.argv[1:4]
    (server if mode == "server" else client)(_parse(a), _parse(b))

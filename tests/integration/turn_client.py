"""A small TURN client for tests (RFC 8489 STUN, RFC 8656 TURN, long-term credentials).

Written here rather than driving ``turnutils_uclient`` because the tests assert the exact error
code coturn answers to one exact request (Allocate, CreatePermission, ChannelBind), which uclient
only prints among its progress output, and because it must send from a socket made inside a
network namespace. Only what the tests need: no channel data, no TCP, no response verification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import struct
import zlib
from dataclasses import dataclass, field

import trio

COOKIE = 0x2112A442
BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, REALM, NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
CHANNEL_NUMBER, LIFETIME, XOR_PEER_ADDRESS, DATA_ATTR = 0x000C, 0x000D, 0x0012, 0x0013
XOR_RELAYED_ADDRESS, REQUESTED_ADDRESS_FAMILY, REQUESTED_TRANSPORT = 0x0016, 0x0017, 0x0019
XOR_MAPPED_ADDRESS, FINGERPRINT = 0x0020, 0x8028
UDP = 17

Address = tuple[str, int]


def rest_credentials(secret: bytes, username: str) -> str:
    """The TURN REST password for ``username`` (``expiry:name``): base64(HMAC-SHA1(secret, username))."""
    return base64.b64encode(hmac.new(secret, username.encode(), hashlib.sha1).digest()).decode()


@dataclass
class Message:
    method: int
    cls: int
    txid: bytes
    attrs: list[tuple[int, bytes]] = field(default_factory=list)

    def get(self, kind: int) -> bytes | None:
        return next((value for attr, value in self.attrs if attr == kind), None)

    @property
    def error_code(self) -> int | None:
        value = self.get(ERROR_CODE)
        return None if value is None else (value[2] & 0x7) * 100 + value[3]

    @property
    def reason(self) -> str:
        value = self.get(ERROR_CODE)
        return "" if value is None else value[4:].decode("utf-8", "replace")

    def xor_address(self, kind: int) -> Address | None:
        value = self.get(kind)
        return None if value is None else decode_xor_address(value, self.txid)

    def __str__(self) -> str:
        kind = {SUCCESS: "success", ERROR: f"error {self.error_code} {self.reason!r}"}.get(self.cls, str(self.cls))
        return f"method 0x{self.method:03x} {kind}"


def _message_type(method: int, cls: int) -> int:
    return ((method & 0xF80) << 2) | ((method & 0x70) << 1) | (method & 0xF) | ((cls & 2) << 7) | ((cls & 1) << 4)


def encode(msg: Message, *, key: bytes | None = None) -> bytes:
    """The message's bytes; with ``key``, MESSAGE-INTEGRITY, and always a FINGERPRINT."""
    body = b"".join(struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)
                    for kind, value in msg.attrs)
    kind = _message_type(msg.method, msg.cls)

    def header(length: int) -> bytes:
        return struct.pack("!HHI", kind, length, COOKIE) + msg.txid

    if key is not None:
        mac = hmac.new(key, header(len(body) + 24) + body, hashlib.sha1).digest()
        body += struct.pack("!HH", MESSAGE_INTEGRITY, 20) + mac
    crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
    body += struct.pack("!HHI", FINGERPRINT, 4, crc)
    return header(len(body)) + body


def decode(data: bytes) -> Message:
    kind, length, cookie = struct.unpack_from("!HHI", data)
    if cookie != COOKIE or len(data) < 20 + length:
        raise ValueError("not a STUN message")
    method = (kind & 0xF) | ((kind >> 1) & 0x70) | ((kind >> 2) & 0xF80)
    cls = ((kind >> 7) & 2) | ((kind >> 4) & 1)
    msg = Message(method, cls, data[8:20])
    offset = 20
    while offset < 20 + length:
        attr, size = struct.unpack_from("!HH", data, offset)
        msg.attrs.append((attr, data[offset + 4:offset + 4 + size]))
        offset += 4 + size + (-size % 4)
    return msg


def encode_xor_address(address: Address, txid: bytes) -> bytes:
    ip = ipaddress.ip_address(address[0])
    port = address[1] ^ (COOKIE >> 16)
    mask = struct.pack("!I", COOKIE) + (txid if ip.version == 6 else b"")
    packed = bytes(a ^ b for a, b in zip(ip.packed, mask))
    return struct.pack("!BBH", 0, 1 if ip.version == 4 else 2, port) + packed


def decode_xor_address(value: bytes, txid: bytes) -> Address:
    family, port = value[1], struct.unpack_from("!H", value, 2)[0] ^ (COOKIE >> 16)
    mask = struct.pack("!I", COOKIE) + (txid if family == 2 else b"")
    raw = bytes(a ^ b for a, b in zip(value[4:], mask))
    return str(ipaddress.ip_address(raw)), port


def binding_request() -> bytes:
    return encode(Message(BINDING, REQUEST, os.urandom(12)))


class TurnClient:
    """One TURN client on a connected-less UDP trio socket, with long-term credentials.

    :meth:`request` does the whole dance: an unauthenticated attempt, the 401 challenge (REALM,
    NONCE), then the authenticated attempt, whose answer it returns (``authenticated`` tells
    whether the answer is to a request that carried MESSAGE-INTEGRITY). A 438 (stale nonce), or a
    401 carrying a nonce other than the one just used, is retried with the new nonce: coturn keeps
    nonces per relay thread, and while it starts the kernel may hand a client's next datagram to
    a thread that has not seen it (SO_REUSEPORT). Wrong credentials get 401 with the same nonce.
    """

    def __init__(self, sock: trio.socket.SocketType, server: Address, username: str, password: str) -> None:
        self.sock, self.server, self.username, self.password = sock, server, username, password
        self.realm: bytes | None = None
        self.nonce: bytes | None = None
        self.relayed: Address | None = None

    def _key(self) -> bytes:
        assert self.realm is not None
        return hashlib.md5(f"{self.username}:{self.realm.decode()}:{self.password}".encode()).digest()

    async def _exchange(self, data: bytes, txid: bytes) -> Message:
        for attempt in range(7):  # RFC 8489 retransmissions, shortened: 0.25 s doubling, 8 s max
            await self.sock.sendto(data, self.server)
            with trio.move_on_after(min(0.25 * 2**attempt, 2.0)):
                while True:
                    reply, _ = await self.sock.recvfrom(65536)
                    try:
                        msg = decode(reply)
                    except (ValueError, struct.error):
                        continue
                    if msg.txid == txid and msg.cls in (SUCCESS, ERROR):
                        return msg
        raise TimeoutError(f"no answer from TURN server {self.server}")

    async def request(
        self, method: int, attrs: list[tuple[int, bytes]], *, peer: Address | None = None
    ) -> tuple[Message, bool]:
        """``(answer, authenticated)``; see the class docstring. ``peer``: an XOR-PEER-ADDRESS."""
        for _ in range(3):
            txid = os.urandom(12)
            authenticated = self.nonce is not None
            full = list(attrs)
            if peer is not None:
                full.append((XOR_PEER_ADDRESS, encode_xor_address(peer, txid)))
            if authenticated:
                assert self.realm is not None and self.nonce is not None
                full += [(USERNAME, self.username.encode()), (REALM, self.realm), (NONCE, self.nonce)]
            data = encode(Message(method, REQUEST, txid, full), key=self._key() if authenticated else None)
            answer = await self._exchange(data, txid)
            nonce = answer.get(NONCE)
            fresh = nonce is not None and nonce != self.nonce
            if answer.error_code in (401, 438) and (fresh or not authenticated):
                self.realm = answer.get(REALM) or self.realm
                self.nonce = nonce
                continue
            return answer, authenticated
        return answer, authenticated

    async def allocate(self, *, ipv6: bool = False) -> tuple[Message, bool]:
        attrs = [(REQUESTED_TRANSPORT, bytes([UDP, 0, 0, 0])), (LIFETIME, struct.pack("!I", 300))]
        if ipv6:
            attrs.append((REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0])))
        answer, authenticated = await self.request(ALLOCATE, attrs)
        if answer.cls == SUCCESS:
            self.relayed = answer.xor_address(XOR_RELAYED_ADDRESS)
        return answer, authenticated

    async def create_permission(self, peer: Address) -> Message:
        return (await self.request(CREATE_PERMISSION, [], peer=peer))[0]

    async def channel_bind(self, peer: Address, channel: int = 0x4000) -> Message:
        return (await self.request(CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!HH", channel, 0))], peer=peer))[0]

    async def send(self, peer: Address, payload: bytes) -> None:
        """A Send indication (no answer; the server relays it if a permission allows)."""
        txid = os.urandom(12)
        attrs = [(XOR_PEER_ADDRESS, encode_xor_address(peer, txid)), (DATA_ATTR, payload)]
        await self.sock.sendto(encode(Message(SEND, INDICATION, txid, attrs)), self.server)

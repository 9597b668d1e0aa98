"""The authentication step end to end over in-memory channels, including a man in the middle."""

from __future__ import annotations

import hashlib

import pytest
import trio

from daemon.crypto import DeviceIdentity
from daemon.protocol.auth import AuthMode
from daemon.runtime.authentication import (
    Authenticated,
    AuthenticationFailed,
    Credentials,
    ModeRefused,
    authenticate,
)
from daemon.transfer.errors import TransferInterrupted


def fingerprint(name: str) -> str:
    return "sha-256 " + ":".join(f"{b:02X}" for b in hashlib.sha256(name.encode()).digest())


class MemoryChannel:
    """One end of an in-memory message pipe that knows the fingerprints its side saw."""

    max_message_size = 1 << 16

    def __init__(self, send, receive, local: str, remote: str) -> None:
        self._send, self._receive = send, receive
        self.local_fingerprints, self.remote_fingerprints = local, remote
        self.sent: list[bytes] = []

    async def send(self, data: bytes) -> None:
        self.sent.append(data)
        await self._send.send(data)

    async def receive(self) -> bytes:
        return await self._receive.receive()


def pipe(fp_a: str, fp_b: str, seen_by_a: str | None = None, seen_by_b: str | None = None):
    """Channels (a, b); a sees ``seen_by_a`` as the peer (default fp_b), b sees ``seen_by_b``."""
    a_out, b_in = trio.open_memory_channel[bytes](64)
    b_out, a_in = trio.open_memory_channel[bytes](64)
    a = MemoryChannel(a_out, a_in, fp_a, seen_by_a or fp_b)
    b = MemoryChannel(b_out, b_in, fp_b, seen_by_b or fp_a)
    return a, b


async def run_both(host_channel, host_creds, joiner_channel, joiner_creds):
    results: dict[str, Authenticated | BaseException] = {}

    async def side(name, channel, role, creds):
        try:
            results[name] = await authenticate(channel, role, creds, timeout=5)
        except (AuthenticationFailed, TransferInterrupted) as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, "host", host_channel, "offerer", host_creds)
        nursery.start_soon(side, "joiner", joiner_channel, "answerer", joiner_creds)
    return results["host"], results["joiner"]


def code_creds(code: str, *, initiator: bool) -> Credentials:
    if initiator:
        return Credentials(mode=AuthMode.CODE, passwords={AuthMode.CODE: code.encode()})
    return Credentials(passwords={AuthMode.CODE: code.encode()})


async def test_same_code_agrees_on_a_key() -> None:
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, code_creds("123456", initiator=False),
                                  joiner_ch, code_creds("123456", initiator=True))
    assert isinstance(host, Authenticated) and isinstance(joiner, Authenticated)
    assert host.key == joiner.key and host.mode is AuthMode.CODE
    assert host.key.resume_secret("share") == joiner.key.resume_secret("share")


async def test_wrong_code_fails_on_both_sides_and_counts_as_a_guess() -> None:
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, code_creds("123456", initiator=False),
                                  joiner_ch, code_creds("654321", initiator=True))
    assert isinstance(host, AuthenticationFailed) and host.secret_tested
    assert isinstance(joiner, AuthenticationFailed)
    assert "could not authenticate the peer" in str(joiner)


async def test_man_in_the_middle_with_the_right_code_is_detected() -> None:
    """The relay terminates DTLS on both sides (each side sees the relay's certificate) and
    forwards the authentication messages verbatim: both sides know the code, yet both fail."""
    host_ch, relay_to_host = pipe(fingerprint("host"), fingerprint("relay-1"))
    relay_to_joiner, joiner_ch = pipe(fingerprint("relay-2"), fingerprint("joiner"))

    async def forward(src, dst) -> None:
        try:
            while True:
                await dst.send(await src.receive())
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forward, relay_to_host, relay_to_joiner)
        nursery.start_soon(forward, relay_to_joiner, relay_to_host)
        host, joiner = await run_both(host_ch, code_creds("123456", initiator=False),
                                      joiner_ch, code_creds("123456", initiator=True))
        nursery.cancel_scope.cancel()
    assert isinstance(host, AuthenticationFailed) and isinstance(joiner, AuthenticationFailed)
    assert "in the middle" in str(host) or "in the middle" in str(joiner)


async def test_resume_without_a_secret_is_refused_without_a_guess() -> None:
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    joiner_creds = Credentials(mode=AuthMode.RESUME, passwords={AuthMode.RESUME: b"s" * 32})
    host, joiner = await run_both(host_ch, code_creds("123456", initiator=False), joiner_ch, joiner_creds)
    assert isinstance(host, ModeRefused) and not host.secret_tested
    assert isinstance(joiner, ModeRefused)


def device_creds(me: DeviceIdentity, trusted: set[bytes], *, initiator: bool) -> Credentials:
    return Credentials(mode=AuthMode.DEVICE if initiator else None, identity=me,
                       trusts=lambda key: key in trusted)


async def test_paired_devices_authenticate_without_a_code_and_revocation_refuses() -> None:
    a, b = DeviceIdentity.generate(), DeviceIdentity.generate()
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, device_creds(a, {b.public_key}, initiator=False),
                                  joiner_ch, device_creds(b, {a.public_key}, initiator=True))
    assert isinstance(host, Authenticated) and isinstance(joiner, Authenticated)
    assert host.key == joiner.key and host.peer_device_key == b.public_key

    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, device_creds(a, set(), initiator=False),  # b revoked
                                  joiner_ch, device_creds(b, {a.public_key}, initiator=True))
    assert isinstance(host, AuthenticationFailed) and "not paired" in str(host)
    assert isinstance(joiner, AuthenticationFailed)
    assert len(host_ch.sent) == 1, "the host refused before proving anything"


async def test_device_signature_for_another_connection_is_refused() -> None:
    a, b = DeviceIdentity.generate(), DeviceIdentity.generate()
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"), seen_by_b=fingerprint("relay"))
    host, joiner = await run_both(host_ch, device_creds(a, {b.public_key}, initiator=False),
                                  joiner_ch, device_creds(b, {a.public_key}, initiator=True))
    assert isinstance(host, AuthenticationFailed) and isinstance(joiner, AuthenticationFailed)


async def test_pairing_exchanges_device_keys() -> None:
    a, b = DeviceIdentity.generate(), DeviceIdentity.generate()
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host_creds = Credentials(passwords={AuthMode.PAIR: b"424242"}, identity=a, name="pi")
    joiner_creds = Credentials(mode=AuthMode.PAIR, passwords={AuthMode.PAIR: b"424242"}, identity=b, name="laptop")
    host, joiner = await run_both(host_ch, host_creds, joiner_ch, joiner_creds)
    assert isinstance(host, Authenticated) and isinstance(joiner, Authenticated)
    assert (host.peer_device_key, host.peer_name) == (b.public_key, "laptop")
    assert (joiner.peer_device_key, joiner.peer_name) == (a.public_key, "pi")


async def test_silent_peer_times_out_and_garbage_fails() -> None:
    host_ch, _joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    with pytest.raises(TransferInterrupted):
        await authenticate(host_ch, "offerer", code_creds("123456", initiator=False), timeout=0.2)

    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    await joiner_ch.send(b"\x00\x00\x00\x05\x01{}{}{")
    with pytest.raises(AuthenticationFailed):
        await authenticate(host_ch, "offerer", code_creds("123456", initiator=False), timeout=2)


async def test_origin_mode_is_accepted_only_where_the_host_allows_it_and_never_seals() -> None:
    page = Credentials(mode=AuthMode.ORIGIN)
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("page"))
    host, joiner = await run_both(host_ch, Credentials(passwords={AuthMode.CODE: b"123456"}, origin=True, seal=True),
                                  joiner_ch, page)
    assert isinstance(host, Authenticated) and isinstance(joiner, Authenticated)
    assert host.mode is AuthMode.ORIGIN and not host.seal and not joiner.seal
    assert host.key != joiner.key  # no shared secret: neither key opens anything of the other's
    assert len(host_ch.sent) == 1 and len(joiner_ch.sent) == 1

    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("page"))
    host, joiner = await run_both(host_ch, Credentials(passwords={AuthMode.CODE: b"123456"}), joiner_ch, page)
    assert isinstance(host, ModeRefused) and not host.secret_tested
    assert isinstance(joiner, AuthenticationFailed)


class Book:
    """A minimal device book: trusted keys, with the callbacks the runtime's DeviceBook provides."""

    def __init__(self, *keys: bytes, revoked: tuple[bytes, ...] = ()) -> None:
        self.keys = set(keys)
        self.revoked_here = list(revoked)
        self.rotations: list[tuple[bytes, bytes]] = []
        self.revocations: list[bytes] = []

    def creds(self, identity: DeviceIdentity, *, initiator: bool) -> Credentials:
        return Credentials(mode=AuthMode.DEVICE if initiator else None, identity=identity,
                           trusts=self.keys.__contains__, rotate=self.rotate, revoked=lambda: self.revoked_here,
                           revoke=self.revoke)

    def rotate(self, old: bytes, new: bytes) -> None:
        self.rotations.append((old, new))
        self.keys.discard(old)
        self.keys.add(new)

    def revoke(self, keys) -> None:
        self.revocations.extend(keys)
        self.keys.difference_update(keys)


async def test_a_rotated_key_is_followed_without_pairing_again_and_the_old_key_is_refused_after() -> None:
    pi, laptop = DeviceIdentity.generate(), DeviceIdentity.generate()
    new_laptop = laptop.rotated().rotated()  # rotated twice while the pi was not looking
    pi_book, laptop_book = Book(laptop.public_key), Book(pi.public_key)
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, pi_book.creds(pi, initiator=False),
                                  joiner_ch, laptop_book.creds(new_laptop, initiator=True))
    assert isinstance(host, Authenticated) and isinstance(joiner, Authenticated)
    assert host.peer_device_key == new_laptop.public_key and host.peer_root_key == laptop.public_key
    assert pi_book.rotations == [(laptop.public_key, new_laptop.public_key)]

    # Whoever kept the old key (a stolen backup) is refused now.
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, pi_book.creds(pi, initiator=False),
                                  joiner_ch, laptop_book.creds(laptop, initiator=True))
    assert isinstance(host, AuthenticationFailed) and isinstance(joiner, AuthenticationFailed)


async def test_a_chain_from_a_key_nobody_trusts_opens_nothing() -> None:
    pi, stranger = DeviceIdentity.generate(), DeviceIdentity.generate()
    pi_book = Book(DeviceIdentity.generate().public_key)
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, pi_book.creds(pi, initiator=False),
                                  joiner_ch, Book(pi.public_key).creds(stranger.rotated(), initiator=True))
    assert isinstance(host, AuthenticationFailed) and "not paired" in str(host)
    assert pi_book.rotations == []


async def test_revocations_travel_from_a_trusted_device_only() -> None:
    appliance, laptop, lost_phone = (DeviceIdentity.generate() for _ in range(3))
    laptop_book = Book(appliance.public_key, lost_phone.public_key)
    appliance_book = Book(laptop.public_key, revoked=(lost_phone.public_key,))
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host, joiner = await run_both(host_ch, laptop_book.creds(laptop, initiator=False),
                                  joiner_ch, appliance_book.creds(appliance, initiator=True))
    assert isinstance(host, Authenticated) and isinstance(joiner, Authenticated)
    assert laptop_book.revocations == [lost_phone.public_key]
    assert lost_phone.public_key not in laptop_book.keys

    # A device the laptop does not trust (the lost phone itself, say) cannot revoke anything.
    laptop_book = Book(appliance.public_key)
    stranger_book = Book(laptop.public_key, revoked=(appliance.public_key,))
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    await run_both(host_ch, laptop_book.creds(laptop, initiator=False),
                   joiner_ch, stranger_book.creds(lost_phone, initiator=True))
    assert laptop_book.revocations == [] and appliance.public_key in laptop_book.keys


async def test_pairing_with_a_rotated_device_learns_its_first_key() -> None:
    a, b = DeviceIdentity.generate(), DeviceIdentity.generate().rotated()
    host_ch, joiner_ch = pipe(fingerprint("host"), fingerprint("joiner"))
    host_creds = Credentials(passwords={AuthMode.PAIR: b"424242"}, identity=a, name="pi")
    joiner_creds = Credentials(mode=AuthMode.PAIR, passwords={AuthMode.PAIR: b"424242"}, identity=b, name="laptop")
    host, joiner = await run_both(host_ch, host_creds, joiner_ch, joiner_creds)
    assert isinstance(host, Authenticated) and host.peer_device_key == b.public_key
    assert host.peer_root_key == b.rotations[0].old and joiner.peer_root_key == a.public_key

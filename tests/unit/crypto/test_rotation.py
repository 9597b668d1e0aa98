"""Key rotation chains: a new key signed by the old, the device id kept, every forgery refused."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.crypto import MAX_CHAIN, BadSignature, DeviceIdentity, KeyRotation, device_id_of, verify_chain


def test_rotating_keeps_the_device_id_and_the_chain_leads_from_the_first_key_to_the_current() -> None:
    first = DeviceIdentity.generate()
    second = first.rotated()
    third = second.rotated()
    assert first.device_id == second.device_id == third.device_id == device_id_of(first.public_key)
    assert len({first.public_key, second.public_key, third.public_key}) == 3
    assert verify_chain(third.rotations, third.public_key) == (first.public_key, second.public_key, third.public_key)
    assert verify_chain((), first.public_key) == (first.public_key,)
    restored = DeviceIdentity.from_seed(third.seed, third.rotations)
    assert restored.public_key == third.public_key and restored.device_id == first.device_id


def test_a_chain_that_does_not_lead_to_the_key_is_refused() -> None:
    rotated = DeviceIdentity.generate().rotated()
    stranger = DeviceIdentity.generate()
    with pytest.raises(BadSignature):
        verify_chain(rotated.rotations, stranger.public_key)
    with pytest.raises(BadSignature):
        DeviceIdentity.from_seed(stranger.seed, rotated.rotations)


def test_a_rotation_not_signed_by_the_key_it_replaces_is_refused() -> None:
    victim = DeviceIdentity.generate()
    thief = DeviceIdentity.generate()
    forged = dataclasses.replace(thief.rotated().rotations[0], old=victim.public_key)
    with pytest.raises(BadSignature):
        verify_chain((forged,), forged.new)


def test_links_must_join_keys_must_not_repeat_and_chains_are_bounded() -> None:
    a = DeviceIdentity.generate()
    b = a.rotated()
    c = b.rotated()
    with pytest.raises(BadSignature):  # a gap: the middle link is missing
        verify_chain((c.rotations[0],), c.public_key)
    with pytest.raises(BadSignature):
        verify_chain((c.rotations[1], c.rotations[0]), c.public_key)
    identity = a
    for _ in range(MAX_CHAIN):
        identity = identity.rotated()
    assert len(verify_chain(identity.rotations, identity.public_key)) == MAX_CHAIN + 1
    with pytest.raises(BadSignature):
        identity.rotated()


@given(st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=70))
def test_malformed_links_are_refused_as_bad_signatures(old: bytes, new: bytes, signature: bytes) -> None:
    try:
        link = KeyRotation(old, new, signature)
    except BadSignature:
        return
    with pytest.raises(BadSignature):
        verify_chain((link,), new)

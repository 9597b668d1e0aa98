"""Rooms with passwords over real sockets: create, join (argon2id), member events, text relay,
failures that look like every other join failure, and destruction."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from daemon.signaling import Limits

FAST = Limits(room_password_opslimit=1, room_password_memlimit=8192)
JOIN_FAILED_FRAME = '{"type":"error","code":"join_failed","message":"no such code or share","id":7}'


@pytest.fixture
def limits() -> Limits:
    """Cheap argon2id parameters, so the tests stay fast (one test uses the defaults)."""
    return FAST


async def create(client: Any, password: str = "correct horse", **fields: Any) -> dict[str, Any]:
    reply = await client.request({"type": "room_create", "password": password, "id": 1, **fields})
    assert reply["type"] == "room_created", reply
    return reply


async def raw_room_join(client: Any, room: str, password: str) -> str:
    await client.send({"type": "room_join", "room": room, "password": password, "id": 7})
    with trio.fail_after(5):
        frame = await client.ws.get_message()
    assert isinstance(frame, str)
    return frame


async def test_create_join_text_and_leave(connect, signaling: Any) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        created = await create(alice, name="kitchen")
        room = created["room"]
        assert created["name"] == "kitchen" and created["id"] == 1
        assert created["expires_at"] == signaling.clock.now + 3600

        joined = await bob.request({"type": "room_join", "room": room, "password": "correct horse"})
        assert joined["type"] == "room_joined" and joined["members"] == [created["member"]]
        assert joined["name"] == "kitchen"
        bob_id = joined["member"]
        assert await alice.receive() == {"type": "member_joined", "room": room, "member": bob_id}

        joined_c = await carol.request(
            {"type": "room_join", "room": room, "password": "correct horse", "id": 2}
        )
        assert sorted(joined_c["members"]) == sorted([created["member"], bob_id])
        carol_id = joined_c["member"]
        for other in (alice, bob):
            assert await other.receive() == {
                "type": "member_joined",
                "room": room,
                "member": carol_id,
            }

        await bob.send({"type": "text", "room": room, "text": "hello, room"})
        said = {"type": "text", "room": room, "member": bob_id, "text": "hello, room"}
        assert await alice.receive() == said
        assert await carol.receive() == said
        await bob.assert_silent()  # no echo

        reply = await bob.request({"type": "text", "room": room, "text": "x" * 4097, "id": 3})
        assert reply["code"] == "bad_message" and reply["id"] == 3

        left = await carol.request({"type": "room_leave", "room": room, "id": 4})
        assert left == {"type": "room_left", "room": room, "id": 4}
        for other in (alice, bob):
            assert await other.receive() == {"type": "member_left", "room": room, "member": carol_id}
        reply = await carol.request({"type": "text", "room": room, "text": "hi", "id": 5})
        assert reply == {
            "type": "error",
            "code": "unknown_room",
            "message": "not in such a room",
            "id": 5,
        }
        stats = await signaling.server.statistics()
        assert stats.joins_ok == 2 and stats.joins_failed == 0


async def test_wrong_password_looks_like_every_other_failure(connect, signaling: Any) -> None:
    store = signaling.server.store
    async with connect() as alice, connect() as mallory:
        room = (await create(alice))["room"]
        replies = [
            await raw_room_join(mallory, room, "Correct horse"),  # wrong password
            await raw_room_join(mallory, "r" * 22, "correct horse"),  # no such room
            await raw_room_join(mallory, "not a room id", "correct horse"),  # malformed
        ]
        await mallory.send({"type": "join", "code": "000000", "id": 7})
        replies.append(await mallory.ws.get_message())
        assert replies == [JOIN_FAILED_FRAME] * 4
        await alice.assert_silent()
        stats = await signaling.server.statistics()
        assert stats.joins_failed == 4
        assert len(store._budgets["127.0.0.1"]) == 4  # charged to the address
        assert len(store._global_failures) == 4  # and to the global budget
        # the stored secret is an argon2id hash, and the room id is not derived from it
        record = store._rooms[room]
        assert record.password_hash.startswith(b"$argon2id$")
        other = (await create(alice))["room"]
        assert other != room


@pytest.mark.parametrize(
    "limits",
    [Limits(ip_failed_join_budget=2, room_password_opslimit=1, room_password_memlimit=8192)],
)
async def test_room_joins_are_budgeted(connect, signaling: Any) -> None:
    async with connect() as alice, connect() as mallory:
        room = (await create(alice))["room"]
        for _ in range(2):
            assert await raw_room_join(mallory, room, "guess") == JOIN_FAILED_FRAME
        # budget used up: even the right password fails, identically
        assert await raw_room_join(mallory, room, "correct horse") == JOIN_FAILED_FRAME
        await alice.assert_silent()


async def test_room_is_gone_after_the_last_member_leaves(connect, signaling: Any) -> None:
    store = signaling.server.store
    async with connect() as alice, connect() as bob:
        room = (await create(alice))["room"]
        await bob.request({"type": "room_join", "room": room, "password": "correct horse"})
        await alice.receive()  # member_joined
        assert store.room_count(now=signaling.clock.now) == 1
        await bob.request({"type": "room_leave", "room": room})
        await alice.receive()  # member_left
        await alice.request({"type": "room_leave", "room": room})
        assert store.room_count(now=signaling.clock.now) == 0
        assert await raw_room_join(bob, room, "correct horse") == JOIN_FAILED_FRAME


async def test_closing_a_socket_leaves_its_rooms(connect, signaling: Any) -> None:
    store = signaling.server.store
    async with connect() as alice:
        async with connect() as bob:
            room = (await create(alice))["room"]
            joined = await bob.request(
                {"type": "room_join", "room": room, "password": "correct horse"}
            )
            await alice.receive()  # member_joined
        assert await alice.receive() == {
            "type": "member_left",
            "room": room,
            "member": joined["member"],
        }
    with trio.fail_after(5):
        while store.room_count(now=signaling.clock.now):
            await trio.sleep(0.01)


async def test_room_expires_after_its_ttl(connect, signaling: Any) -> None:
    async with connect() as alice, connect() as bob:
        room = (await create(alice))["room"]
        signaling.clock.advance(3600)
        assert await raw_room_join(bob, room, "correct horse") == JOIN_FAILED_FRAME
        reply = await alice.request({"type": "text", "room": room, "text": "anyone?"})
        assert reply["code"] == "unknown_room"
        assert signaling.server.store.room_count(now=signaling.clock.now) == 0


@pytest.mark.parametrize(
    "limits",
    [Limits(max_rooms=1, max_room_members=2, room_password_opslimit=1, room_password_memlimit=8192)],
)
async def test_room_caps(connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        room = (await create(alice))["room"]
        reply = await bob.request({"type": "room_create", "password": "p", "id": 9})
        assert reply == {"type": "error", "code": "try_later", "message": "too many rooms", "id": 9}
        joined = await bob.request({"type": "room_join", "room": room, "password": "correct horse"})
        assert joined["type"] == "room_joined"
        assert await raw_room_join(carol, room, "correct horse") == JOIN_FAILED_FRAME  # full
        assert await raw_room_join(bob, room, "correct horse") == JOIN_FAILED_FRAME  # in it


@pytest.mark.parametrize("limits", [Limits()])
async def test_default_interactive_cost_works(connect) -> None:
    async with connect() as alice, connect() as bob:
        room = (await create(alice, password="pässwörd"))["room"]
        joined = await bob.request({"type": "room_join", "room": room, "password": "pässwörd"})
        assert joined["type"] == "room_joined"

"""Redis-backed :class:`~daemon.signaling.store.SessionStore`: several daemons behind one address.

Every instance connects to the same Redis; codes, shares, sessions and budgets live there, and a
frame for a connection id is delivered over Redis pub/sub (one channel per connection id,
``<prefix>conn:<id>``), so a joiner on instance B reaches a host on instance A.

Client: `coredis <https://coredis.readthedocs.io>`_ (6.x), which is written against anyio and
therefore runs unchanged under trio (anyio picks the trio backend from the running loop). Its
connection pool and pub/sub reader are anyio task groups, i.e. trio nurseries, owned by
:meth:`RedisSessionStore.open`.

Atomicity: every state-changing method is one Lua script (``EVALSHA``), so each is atomic with
respect to every other call from any instance, like the in-memory store's methods. Read-only
lookups are single commands (``HMGET`` for a session, ``SMISMEMBER`` on ``P shares`` for
presence, which needs Redis 6.2 or later). Scripts build
key names from the prefix, so this needs a single Redis server (no cluster).

Time: callers pass ``now`` (the store never reads a clock). A code stores its ``expires_at`` and
the scripts compare it with ``now``, exactly like the in-memory store; the code's key also gets a
Redis expiry of the code TTL (``PEXPIRE``) so it disappears by itself, and failure-budget keys
expire with their window, rooms with their TTL. Shares and sessions have no expiry: they die
with their connections (:meth:`drop_connection`). An instance that crashes without cleaning up
leaves its connections' shares and sessions behind until the keys are deleted: a join to such a
share gets ``joined`` and at once ``left`` (nobody is subscribed to receive ``peer``), and the
sharer can re-host it with its host key as after any reconnect.

Key layout (``P`` is the prefix, ``doorstep:signal:`` by default)::

    P share:<share>       hash  conn, key (hex SHA-256 of the host key), code ('' when none)
    P code:<code>         hash  share, exp (unix seconds), fail        PEXPIRE code_ttl
    P session:<session>   hash  share, host, joiner
    P cshares:<conn>      set   shares hosted by conn
    P csessions:<conn>    set   sessions conn is a party of
    P shares / sessions   sets  for statistics and presence;  P codes  zset code -> exp
    P budget:<ip>         list  newest failure times (at most the budget)  PEXPIRE window
    P budgets             zset  ip -> recency (P budgetseq), trimmed to max_tracked_ips
    P global              list  newest service-wide code-join failure times
    P room:<room>         hash  pw (hex), name, hasname, exp                PEXPIRE room_ttl
    P roommembers:<room>  hash  conn -> member id                          PEXPIRE room_ttl
    P roomorder:<room>    list  member conns in joining order              PEXPIRE room_ttl
    P crooms:<conn>       set   rooms conn is a member of;  P rooms  zset room -> exp

Delivery: a local connection (same instance) gets frames straight into its bounded queue, with
the in-memory store's exact semantics. A remote one gets them with ``PUBLISH``; ``deliver``
returns False when nobody is subscribed to the channel (connection gone). A remote queue that
overflows is detected by the instance owning it (its ``on_overflow`` is called from that
instance's pub/sub reader), and ``deliver`` on the sending instance still returns True.
"""

from __future__ import annotations

import math
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import coredis
import trio
from coredis.exceptions import RedisError
from coredis.retry import NoRetryPolicy

from daemon.signaling.limits import Limits
from daemon.signaling.store import (
    CodesExhausted,
    ConnectionId,
    HostKeyMismatch,
    HostResult,
    RoomEntry,
    RoomMember,
    RoomMembership,
    RoomsExhausted,
    SessionRecord,
    StoreStatistics,
)

__all__ = ["RedisSessionStore", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "doorstep:signal:"
_UNSUBSCRIBE_TIMEOUT = 2.0

# --- Lua ------------------------------------------------------------------------------------------
# ARGV[1] is always the key prefix. Redis' Lua returns false for a nil reply.

_HELPERS = r"""
local P = ARGV[1]

local function revoke_code(code, share)
  -- Drop ``code``; if ``share`` is given, only when the code belongs to that share.
  local ck = P .. 'code:' .. code
  local owner = redis.call('HGET', ck, 'share')
  if not owner then
    redis.call('ZREM', P .. 'codes', code)
    return
  end
  if share and owner ~= share then return end
  redis.call('DEL', ck)
  redis.call('ZREM', P .. 'codes', code)
  local sk = P .. 'share:' .. owner
  if redis.call('HGET', sk, 'code') == code then redis.call('HSET', sk, 'code', '') end
end

local function live_code(code, now)
  -- The share of the live ``code``, or nil; an expired code is revoked on the way.
  local v = redis.call('HMGET', P .. 'code:' .. code, 'share', 'exp')
  if not v[1] then return nil end
  if tonumber(v[2]) <= now then
    revoke_code(code, false)
    return nil
  end
  return v[1]
end

local function drop_share(share, conn, code)
  if code and code ~= '' then revoke_code(code, share) end
  redis.call('DEL', P .. 'share:' .. share)
  redis.call('SREM', P .. 'shares', share)
  redis.call('SREM', P .. 'cshares:' .. conn, share)
end

local function open_session(sid, share, host, joiner)
  redis.call('HSET', P .. 'session:' .. sid, 'share', share, 'host', host, 'joiner', joiner)
  redis.call('SADD', P .. 'sessions', sid)
  redis.call('SADD', P .. 'csessions:' .. host, sid)
  redis.call('SADD', P .. 'csessions:' .. joiner, sid)
  return {sid, share, host, joiner}
end

local function destroy_room(room)
  for _, c in ipairs(redis.call('LRANGE', P .. 'roomorder:' .. room, 0, -1)) do
    redis.call('SREM', P .. 'crooms:' .. c, room)
  end
  redis.call('DEL', P .. 'room:' .. room, P .. 'roommembers:' .. room, P .. 'roomorder:' .. room)
  redis.call('ZREM', P .. 'rooms', room)
end

local function live_room(room, now)
  local exp = redis.call('HGET', P .. 'room:' .. room, 'exp')
  if not exp then
    destroy_room(room)  -- gone by Redis expiry: drop any leftovers
    return false
  end
  if tonumber(exp) <= now then
    destroy_room(room)
    return false
  end
  return true
end

local function room_others(room, conn)
  -- Flat {member, conn, ...} of the members other than conn, in joining order.
  local out = {}
  for _, c in ipairs(redis.call('LRANGE', P .. 'roomorder:' .. room, 0, -1)) do
    if c ~= conn then
      table.insert(out, redis.call('HGET', P .. 'roommembers:' .. room, c))
      table.insert(out, c)
    end
  end
  return out
end

local function leave_room(room, conn)
  -- {member, others} or false when conn is no member of room.
  local member = redis.call('HGET', P .. 'roommembers:' .. room, conn)
  redis.call('SREM', P .. 'crooms:' .. conn, room)
  if not member then return false end
  redis.call('HDEL', P .. 'roommembers:' .. room, conn)
  redis.call('LREM', P .. 'roomorder:' .. room, 0, conn)
  local others = room_others(room, conn)
  if redis.call('LLEN', P .. 'roomorder:' .. room) == 0 then destroy_room(room) end
  return {member, others}
end

local function forget_session(sid, host, joiner)
  redis.call('DEL', P .. 'session:' .. sid)
  redis.call('SREM', P .. 'sessions', sid)
  redis.call('SREM', P .. 'csessions:' .. host, sid)
  redis.call('SREM', P .. 'csessions:' .. joiner, sid)
end
"""

# ARGV: P, share, conn, key_hex, now, want_code, expires_at, ttl_ms, candidate codes...
_HOST_SHARE = r"""
local share, conn, key, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local sk = P .. 'share:' .. share
local existing = redis.call('HMGET', sk, 'conn', 'key', 'code')
if existing[1] and existing[2] ~= key then return {'mismatch'} end
local code = ''
if ARGV[6] == '1' then
  for i = 9, #ARGV do
    if not live_code(ARGV[i], now) then
      code = ARGV[i]
      break
    end
  end
  if code == '' then return {'exhausted'} end
end
local replaced = ''
if existing[1] then
  if existing[3] and existing[3] ~= '' then revoke_code(existing[3], share) end
  if existing[1] ~= conn then
    replaced = existing[1]
    redis.call('SREM', P .. 'cshares:' .. existing[1], share)
  end
end
redis.call('HSET', sk, 'conn', conn, 'key', key, 'code', code)
redis.call('SADD', P .. 'shares', share)
redis.call('SADD', P .. 'cshares:' .. conn, share)
if code ~= '' then
  local ck = P .. 'code:' .. code
  redis.call('DEL', ck)
  redis.call('HSET', ck, 'share', share, 'exp', ARGV[7], 'fail', 0)
  redis.call('PEXPIRE', ck, ARGV[8])
  redis.call('ZADD', P .. 'codes', ARGV[7], code)
end
return {'ok', code, replaced}
"""

# ARGV: P, share, conn
_UNHOST_SHARE = r"""
local v = redis.call('HMGET', P .. 'share:' .. ARGV[2], 'conn', 'code')
if v[1] ~= ARGV[3] then return 0 end
drop_share(ARGV[2], ARGV[3], v[2])
return 1
"""

# ARGV: P, code, joiner, now, session id
_JOIN_BY_CODE = r"""
local code, joiner, sid = ARGV[2], ARGV[3], ARGV[5]
local share = live_code(code, tonumber(ARGV[4]))
if not share then return false end
local host = redis.call('HGET', P .. 'share:' .. share, 'conn')
if not host or host == joiner then return false end
if redis.call('EXISTS', P .. 'session:' .. sid) == 1 then return {'retry'} end
revoke_code(code, false)
return open_session(sid, share, host, joiner)
"""

# ARGV: P, share, joiner, now, session id
_JOIN_BY_SHARE = r"""
local share, joiner, sid = ARGV[2], ARGV[3], ARGV[5]
local host = redis.call('HGET', P .. 'share:' .. share, 'conn')
if not host or host == joiner then return false end
if redis.call('EXISTS', P .. 'session:' .. sid) == 1 then return {'retry'} end
return open_session(sid, share, host, joiner)
"""

# ARGV: P, session, conn
_END_SESSION = r"""
local sid, conn = ARGV[2], ARGV[3]
local v = redis.call('HMGET', P .. 'session:' .. sid, 'share', 'host', 'joiner')
if not v[1] or (v[2] ~= conn and v[3] ~= conn) then return false end
forget_session(sid, v[2], v[3])
return {sid, v[1], v[2], v[3]}
"""

# ARGV: P, conn
_DROP_CONNECTION = r"""
local conn = ARGV[2]
for _, room in ipairs(redis.call('SMEMBERS', P .. 'crooms:' .. conn)) do leave_room(room, conn) end
redis.call('DEL', P .. 'crooms:' .. conn)
for _, share in ipairs(redis.call('SMEMBERS', P .. 'cshares:' .. conn)) do
  local v = redis.call('HMGET', P .. 'share:' .. share, 'conn', 'code')
  if v[1] == conn then drop_share(share, conn, v[2]) end
end
redis.call('DEL', P .. 'cshares:' .. conn)
local ended = {}
for _, sid in ipairs(redis.call('SMEMBERS', P .. 'csessions:' .. conn)) do
  local v = redis.call('HMGET', P .. 'session:' .. sid, 'share', 'host', 'joiner')
  if v[1] then
    forget_session(sid, v[2], v[3])
    table.insert(ended, sid)
    table.insert(ended, v[1])
    table.insert(ended, v[2])
    table.insert(ended, v[3])
  end
end
redis.call('DEL', P .. 'csessions:' .. conn)
return ended
"""

# Failure budgets are lists of the newest ``budget`` failure times, least recent first: the budget
# is used up exactly when the list is full and its oldest entry is younger than the window.

# ARGV: P, list key (without prefix), now, window, budget
_WINDOW_OK = r"""
local key = P .. ARGV[2]
if redis.call('LLEN', key) < tonumber(ARGV[5]) then return 1 end
if tonumber(ARGV[3]) - tonumber(redis.call('LINDEX', key, 0)) >= tonumber(ARGV[4]) then return 1 end
return 0
"""

# ARGV: P, list key (without prefix), now, window_ms, budget, ip or '' (tracked in P budgets),
#       max tracked ips
_CHARGE = r"""
local key = P .. ARGV[2]
redis.call('RPUSH', key, ARGV[3])
redis.call('LTRIM', key, -tonumber(ARGV[5]), -1)
redis.call('PEXPIRE', key, ARGV[4])
if ARGV[6] ~= '' then
  redis.call('ZADD', P .. 'budgets', redis.call('INCR', P .. 'budgetseq'), ARGV[6])
  local limit = tonumber(ARGV[7])
  while redis.call('ZCARD', P .. 'budgets') > limit do
    local oldest = redis.call('ZPOPMIN', P .. 'budgets')
    redis.call('DEL', P .. 'budget:' .. oldest[1])
  end
end
return 1
"""

# ARGV: P, code, now, cap
_RECORD_CODE_FAILURE = r"""
local code = ARGV[2]
if not live_code(code, tonumber(ARGV[3])) then return 0 end
local failures = redis.call('HINCRBY', P .. 'code:' .. code, 'fail', 1)
if failures >= tonumber(ARGV[4]) then
  revoke_code(code, false)
  return 1
end
return 0
"""

# ARGV: P, conn, password hash hex, name, has name ('1'/'0'), expires_at, ttl_ms, max rooms,
#       now, room id, member id
_CREATE_ROOM = r"""
local conn, room, now = ARGV[2], ARGV[10], tonumber(ARGV[9])
if redis.call('ZCARD', P .. 'rooms') >= tonumber(ARGV[8]) then
  for _, r in ipairs(redis.call('ZRANGE', P .. 'rooms', 0, -1)) do live_room(r, now) end
  if redis.call('ZCARD', P .. 'rooms') >= tonumber(ARGV[8]) then return {'exhausted'} end
end
if redis.call('EXISTS', P .. 'room:' .. room) == 1 then return {'retry'} end
local rk, mk, ok = P .. 'room:' .. room, P .. 'roommembers:' .. room, P .. 'roomorder:' .. room
redis.call('HSET', rk, 'pw', ARGV[3], 'name', ARGV[4], 'hasname', ARGV[5], 'exp', ARGV[6])
redis.call('HSET', mk, conn, ARGV[11])
redis.call('RPUSH', ok, conn)
for _, key in ipairs({rk, mk, ok}) do redis.call('PEXPIRE', key, ARGV[7]) end
redis.call('ZADD', P .. 'rooms', ARGV[6], room)
redis.call('SADD', P .. 'crooms:' .. conn, room)
return {'ok'}
"""

# ARGV: P, room, now
_ROOM_PASSWORD_HASH = r"""
if not live_room(ARGV[2], tonumber(ARGV[3])) then return false end
return redis.call('HGET', P .. 'room:' .. ARGV[2], 'pw')
"""

# ARGV: P, room, conn, now, member id, max members
_JOIN_ROOM = r"""
local room, conn, member = ARGV[2], ARGV[3], ARGV[5]
if not live_room(room, tonumber(ARGV[4])) then return false end
local mk = P .. 'roommembers:' .. room
if redis.call('HEXISTS', mk, conn) == 1 then return false end
if redis.call('HLEN', mk) >= tonumber(ARGV[6]) then return false end
for _, m in ipairs(redis.call('HVALS', mk)) do
  if m == member then return {'retry'} end
end
local others = room_others(room, conn)
redis.call('HSET', mk, conn, member)
redis.call('RPUSH', P .. 'roomorder:' .. room, conn)
redis.call('SADD', P .. 'crooms:' .. conn, room)
local v = redis.call('HMGET', P .. 'room:' .. room, 'name', 'hasname', 'exp')
return {'ok', v[1], v[2], v[3], others}
"""

# ARGV: P, room, conn, now
_ROOM_MEMBERSHIP = r"""
local room, conn = ARGV[2], ARGV[3]
if not live_room(room, tonumber(ARGV[4])) then return false end
local member = redis.call('HGET', P .. 'roommembers:' .. room, conn)
if not member then return false end
return {member, room_others(room, conn)}
"""

# ARGV: P, room, conn
_LEAVE_ROOM = r"""
return leave_room(ARGV[2], ARGV[3])
"""

# ARGV: P, conn
_DROP_ROOM_MEMBERSHIPS = r"""
local conn = ARGV[2]
local left = {}
for _, room in ipairs(redis.call('SMEMBERS', P .. 'crooms:' .. conn)) do
  local result = leave_room(room, conn)
  if result then table.insert(left, {room, result[1], result[2]}) end
end
redis.call('DEL', P .. 'crooms:' .. conn)
return left
"""

# ARGV: P, now
_STATISTICS = r"""
local now = tonumber(ARGV[2])
for _, code in ipairs(redis.call('ZRANGE', P .. 'codes', 0, -1)) do
  if not live_code(code, now) then redis.call('ZREM', P .. 'codes', code) end
end
for _, room in ipairs(redis.call('ZRANGEBYSCORE', P .. 'rooms', '-inf', now)) do live_room(room, now) end
return {redis.call('SCARD', P .. 'shares'), redis.call('ZCARD', P .. 'codes'),
        redis.call('SCARD', P .. 'sessions'), redis.call('ZCARD', P .. 'rooms')}
"""


@dataclass(slots=True)
class _Mailbox:
    send: trio.MemorySendChannel[str]
    on_overflow: Callable[[], None]


class RedisSessionStore:
    """A :class:`~daemon.signaling.store.SessionStore` shared through Redis.

    Create it with :meth:`open` (an async context manager owning the Redis connections and the
    pub/sub reader task)::

        async with RedisSessionStore.open("redis://127.0.0.1:6379/0") as store:
            await serve_signaling(store, host, port)
    """

    def __init__(
        self,
        client: coredis.Redis[str],
        pubsub: Any,
        *,
        limits: Limits | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.limits = limits or Limits()
        self.prefix = prefix
        self._redis = client
        self._pubsub = pubsub
        self._channel_prefix = prefix + "conn:"
        self._mailboxes: dict[ConnectionId, _Mailbox] = {}
        self._scripts = {
            name: client.register_script(_HELPERS + body)
            for name, body in {
                "host_share": _HOST_SHARE,
                "unhost_share": _UNHOST_SHARE,
                "join_by_code": _JOIN_BY_CODE,
                "join_by_share": _JOIN_BY_SHARE,
                "end_session": _END_SESSION,
                "drop_connection": _DROP_CONNECTION,
                "window_ok": _WINDOW_OK,
                "charge": _CHARGE,
                "record_code_failure": _RECORD_CODE_FAILURE,
                "statistics": _STATISTICS,
                "create_room": _CREATE_ROOM,
                "room_password_hash": _ROOM_PASSWORD_HASH,
                "join_room": _JOIN_ROOM,
                "room_membership": _ROOM_MEMBERSHIP,
                "leave_room": _LEAVE_ROOM,
                "drop_room_memberships": _DROP_ROOM_MEMBERSHIPS,
            }.items()
        }

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, limits: Limits | None = None, prefix: str = DEFAULT_PREFIX
    ) -> AsyncIterator[RedisSessionStore]:
        """Connect to the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``) and yield
        the store; everything is closed on exit.

        Raises OSError if Redis cannot be reached or refuses the set-up (URL credentials are not
        repeated in the message).
        Commands are not retried (a script might otherwise run twice, e.g. consume a code and
        then fail the retried join).
        """
        client: coredis.Redis[str] = coredis.Redis.from_url(
            url, decode_responses=True, retry_policy=NoRetryPolicy()
        )
        ready = False
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(client)
                await client.ping()
                pubsub = await stack.enter_async_context(
                    client.pubsub(ignore_subscribe_messages=True)
                )
                store = cls(client, pubsub, limits=limits, prefix=prefix)
                for script in store._scripts.values():  # so the first calls need no NOSCRIPT retry
                    await client.script_load(script.script)
                nursery = await stack.enter_async_context(trio.open_nursery())
                nursery.start_soon(store._dispatch)
                ready = True
                try:
                    yield store
                finally:
                    nursery.cancel_scope.cancel()
        except (RedisError, OSError, BaseExceptionGroup) as exc:
            reason = None if ready else _redis_error(exc)
            if reason is None:
                raise
            raise OSError(f"cannot use the redis at {_redacted(url)}: {reason}") from exc

    async def _run(self, name: str, *args: object) -> Any:
        return await self._scripts[name](args=[self.prefix, *(_arg(a) for a in args)])

    # --- delivery -----------------------------------------------------------------------------

    def _channel(self, conn: ConnectionId) -> str:
        return self._channel_prefix + conn

    @staticmethod
    def _offer(mailbox: _Mailbox, frame: str) -> bool:
        try:
            mailbox.send.send_nowait(frame)
        except trio.WouldBlock:
            mailbox.send.close()  # no more deliveries; the owner disconnects the slow socket
            mailbox.on_overflow()
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    async def _dispatch(self) -> None:
        """Route pub/sub messages to the local mailboxes (runs for the store's lifetime)."""
        while True:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True)
            if message is None or message["type"] != "message":
                continue
            channel = message["channel"]
            if not channel.startswith(self._channel_prefix):
                continue
            mailbox = self._mailboxes.get(channel[len(self._channel_prefix) :])
            if mailbox is not None:
                self._offer(mailbox, message["data"])

    @asynccontextmanager
    async def open_mailbox(
        self, conn: ConnectionId, *, on_overflow: Callable[[], None]
    ) -> AsyncIterator[trio.MemoryReceiveChannel[str]]:
        if conn in self._mailboxes:
            raise ValueError("connection id already has a mailbox")
        channel = self._channel(conn)
        numsub = await self._redis.pubsub_numsub(channel)
        if numsub.get(channel, 0):
            raise ValueError("connection id already has a mailbox on another instance")
        send, receive = trio.open_memory_channel[str](self.limits.mailbox_size)
        mailbox = _Mailbox(send=send, on_overflow=on_overflow)
        self._mailboxes[conn] = mailbox
        try:
            await self._pubsub.subscribe(channel)
            yield receive
        finally:
            if self._mailboxes.get(conn) is mailbox:
                del self._mailboxes[conn]
            send.close()
            receive.close()
            with trio.CancelScope(shield=True, deadline=trio.current_time() + _UNSUBSCRIBE_TIMEOUT):
                await self._pubsub.unsubscribe(channel)

    async def deliver(self, conn: ConnectionId, frame: str) -> bool:
        mailbox = self._mailboxes.get(conn)
        if mailbox is not None:
            return self._offer(mailbox, frame)
        receivers = await self._redis.publish(self._channel(conn), frame)
        return bool(receivers)

    # --- shares and codes ---------------------------------------------------------------------

    async def host_share(
        self,
        share: str,
        conn: ConnectionId,
        key_hash: bytes,
        *,
        want_code: bool,
        now: float,
    ) -> HostResult:
        expires_at = now + self.limits.code_ttl
        candidates = (
            [f"{secrets.randbelow(10**6):06d}" for _ in range(self.limits.code_allocation_attempts)]
            if want_code
            else []
        )
        reply = await self._run(
            "host_share",
            share,
            conn,
            key_hash.hex(),
            now,
            "1" if want_code else "0",
            expires_at,
            _millis(self.limits.code_ttl),
            *candidates,
        )
        if reply[0] == "mismatch":
            raise HostKeyMismatch("share is hosted with another key")
        if reply[0] == "exhausted":
            raise CodesExhausted("no free code")
        code = reply[1] or None
        return HostResult(
            share=share,
            code=code,
            expires_at=expires_at if code is not None else None,
            replaced=reply[2] or None,
        )

    async def unhost_share(self, share: str, conn: ConnectionId) -> bool:
        return bool(await self._run("unhost_share", share, conn))

    async def hosted(self, shares: Collection[str]) -> set[str]:
        """One ``SMISMEMBER`` on the set of hosted shares (Redis 6.2 or later)."""
        unique = list(dict.fromkeys(shares))
        if not unique:
            return set()
        flags = await self._redis.smismember(self.prefix + "shares", unique)
        return {share for share, flag in zip(unique, flags, strict=True) if flag}

    # --- sessions -----------------------------------------------------------------------------

    async def _join(
        self, script: str, key: str, joiner: ConnectionId, now: float
    ) -> SessionRecord | None:
        while True:
            reply = await self._run(script, key, joiner, now, secrets.token_urlsafe(16))
            if reply is None:
                return None
            if list(reply) != ["retry"]:  # pragma: no branch - 128 random bits
                return _session(reply)

    async def join_by_code(
        self, code: str, joiner: ConnectionId, *, now: float
    ) -> SessionRecord | None:
        return await self._join("join_by_code", code, joiner, now)

    async def join_by_share(
        self, share: str, joiner: ConnectionId, *, now: float
    ) -> SessionRecord | None:
        return await self._join("join_by_share", share, joiner, now)

    async def get_session(self, session: str) -> SessionRecord | None:
        share, host, joiner = await self._redis.hmget(
            self.prefix + "session:" + session, ["share", "host", "joiner"]
        )
        if share is None or host is None or joiner is None:
            return None
        return SessionRecord(session=session, share=share, host=host, joiner=joiner)

    async def end_session(self, session: str, conn: ConnectionId) -> SessionRecord | None:
        reply = await self._run("end_session", session, conn)
        return None if reply is None else _session(reply)

    async def drop_connection(self, conn: ConnectionId) -> list[SessionRecord]:
        reply = await self._run("drop_connection", conn)
        return [_session(reply[i : i + 4]) for i in range(0, len(reply), 4)]

    # --- abuse budgets ------------------------------------------------------------------------

    async def join_budget_ok(self, ip: str, *, now: float) -> bool:
        limits = self.limits
        return bool(
            await self._run(
                "window_ok", "budget:" + ip, now, limits.ip_budget_window,
                limits.ip_failed_join_budget,
            )
        )

    async def record_failed_join(self, ip: str, *, now: float) -> None:
        limits = self.limits
        await self._run(
            "charge", "budget:" + ip, now, _millis(limits.ip_budget_window),
            limits.ip_failed_join_budget, ip, limits.max_tracked_ips,
        )

    async def global_join_budget_ok(self, *, now: float) -> bool:
        """Not atomic with :meth:`record_global_failed_join` (two calls in the protocol): with
        several instances the bound loosens by the code joins in flight at once."""
        limits = self.limits
        return bool(
            await self._run(
                "window_ok", "global", now, limits.global_budget_window,
                limits.global_failed_join_budget,
            )
        )

    async def record_global_failed_join(self, *, now: float) -> None:
        limits = self.limits
        await self._run(
            "charge", "global", now, _millis(limits.global_budget_window),
            limits.global_failed_join_budget, "", 0,
        )

    async def record_code_failure(self, code: str, *, now: float) -> bool:
        return bool(
            await self._run("record_code_failure", code, now, self.limits.code_attempt_cap)
        )

    # --- rooms --------------------------------------------------------------------------------

    async def create_room(
        self, conn: ConnectionId, password_hash: bytes, *, name: str | None, now: float
    ) -> RoomEntry:
        expires_at = now + self.limits.room_ttl
        while True:
            room, member = secrets.token_urlsafe(16), secrets.token_urlsafe(9)
            reply = await self._run(
                "create_room", conn, password_hash.hex(), name or "", "0" if name is None else "1",
                expires_at, _millis(self.limits.room_ttl), self.limits.max_rooms, now, room, member,
            )
            if reply[0] == "exhausted":
                raise RoomsExhausted("too many rooms")
            if reply[0] == "ok":  # pragma: no branch - 'retry': 128 random bits collided
                return RoomEntry(
                    room=room, name=name, member=member, expires_at=expires_at, others=()
                )

    async def room_password_hash(self, room: str, *, now: float) -> bytes | None:
        reply = await self._run("room_password_hash", room, now)
        return None if reply is None else bytes.fromhex(reply)

    async def join_room(self, room: str, conn: ConnectionId, *, now: float) -> RoomEntry | None:
        while True:
            member = secrets.token_urlsafe(9)
            reply = await self._run(
                "join_room", room, conn, now, member, self.limits.max_room_members
            )
            if reply is None:
                return None
            if reply[0] == "ok":  # pragma: no branch - 'retry': 72 random bits collided
                _, name, has_name, expires_at, others = reply
                return RoomEntry(
                    room=room,
                    name=name if has_name == "1" else None,
                    member=member,
                    expires_at=float(expires_at),
                    others=_members(others),
                )

    async def room_membership(
        self, room: str, conn: ConnectionId, *, now: float
    ) -> RoomMembership | None:
        reply = await self._run("room_membership", room, conn, now)
        if reply is None:
            return None
        member, others = reply
        return RoomMembership(room=room, member=member, others=_members(others))

    async def leave_room(self, room: str, conn: ConnectionId) -> RoomMembership | None:
        reply = await self._run("leave_room", room, conn)
        if reply is None:
            return None
        member, others = reply
        return RoomMembership(room=room, member=member, others=_members(others))

    async def drop_room_memberships(self, conn: ConnectionId) -> list[RoomMembership]:
        reply = await self._run("drop_room_memberships", conn)
        return [
            RoomMembership(room=room, member=member, others=_members(others))
            for room, member, others in reply
        ]

    # --- introspection ------------------------------------------------------------------------

    async def statistics(self, *, now: float) -> StoreStatistics:
        """``connections`` counts this instance's mailboxes; the rest is shared by all instances."""
        shares, codes, sessions, rooms = await self._run("statistics", now)
        return StoreStatistics(
            connections=len(self._mailboxes), shares=shares, codes=codes, sessions=sessions, rooms=rooms
        )


def _arg(value: object) -> str:
    """Script arguments as strings; floats with full precision (``repr``)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _redis_error(exc: BaseException) -> BaseException | None:
    """The first Redis (or socket) error in ``exc``, looking into exception groups."""
    if isinstance(exc, (RedisError, OSError)):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _redis_error(inner)
            if found is not None:
                return found
    return None


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    netloc = "***@" + parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _millis(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _members(flat: Any) -> tuple[RoomMember, ...]:
    flat = list(flat)
    return tuple(RoomMember(member=flat[i], conn=flat[i + 1]) for i in range(0, len(flat), 2))


def _session(reply: Any) -> SessionRecord:
    session, share, host, joiner = reply
    return SessionRecord(session=session, share=share, host=host, joiner=joiner)

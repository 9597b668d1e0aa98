"""A signaling proxy that can put itself in the middle of the WebRTC connection (a test tool).

    python tests/integration/mitm_relay.py --upstream ws://127.0.0.1:PORT/signal/v1 \
        --status STATUS.json [--mode mitm|passthrough]

It listens on 127.0.0.1 (an ephemeral port) and, for every client that connects, opens its own
connection to the real signaling server (``--upstream``) and forwards every frame both ways. Clients
point their ``--signal`` at ``ws://127.0.0.1:PORT/signal/v1`` (any path is accepted).

``--mode passthrough`` forwards everything unchanged (a control: the proxy itself breaks nothing).

``--mode mitm`` intercepts the SDP of every session it sits on, at whichever end passes through it:
when the host's ``{"kind": "offer"}`` is relayed toward the joiner, the proxy keeps it and

- answers the host itself, with its own aiortc peer connection (``Role.ANSWERER``), as the joiner;
- offers to the joiner from a second peer connection of its own (``Role.OFFERER``, the same channel
  label and options as the product), as the host: the joiner sees the relay's DTLS fingerprint in
  place of the host's, and the joiner's answer never reaches the host.

Once both data channels are open it pumps every message, verbatim, both ways: a capable attacker
that terminated DTLS on both sides, not one that merely garbles SDP. Only authentication bound to
the fingerprints each side sees can tell.

Status: a JSON file (``--status``), replaced atomically whenever it changes (at most every 50 ms,
at once for the events that matter), with ``port`` once listening and one record per session::

    {"pid": 123, "port": 40123, "mode": "mitm", "ready": true, "connections": 2,
     "sessions": {"<session id>": {
        "intercepted": true, "end": "joiner",             # which party's socket passes through us
        "host_fingerprint": "sha-256 AB:..,sha-384 ..",   # from the host's offer (all, sorted)
        "relay_offer_fingerprint": "sha-256 CD:..",       # what the joiner was given instead
        "joiner_fingerprint": "sha-256 EF:..",            # from the joiner's answer
        "relay_answer_fingerprint": "sha-256 01:..",      # what the host was given instead
        "host_channel_open": true, "joiner_channel_open": true,
        "host_to_joiner": {"messages": 3, "bytes": 812}, "joiner_to_host": {"messages": 2, "bytes": 90},
        "state": "handshake" | "pumping" | "closed",
        "closed_first": "host" | "joiner" | null,          # whose data channel closed first
        "error": null}}}                                   # a failed handshake or send, else null

In passthrough the session records only say which offer/answer fingerprints went by.

ICE gathers 127.0.0.1 only, with no STUN/TURN servers. Runs trio in guest mode on the product's
asyncio bridge and reuses ``daemon.peer.open_data_channel`` for both legs. SIGTERM/SIGINT stop it
(the status file gets a last update with ``"stopped": true``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trio  # noqa: E402
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, WebSocketRequest  # noqa: E402
from trio_websocket import open_websocket_url, serve_websocket  # noqa: E402

from daemon.ice import IceConfig  # noqa: E402
from daemon.peer import PeerError, Role, open_data_channel  # noqa: E402
from daemon.runtime import bridge  # noqa: E402

ICE = IceConfig(addresses=("127.0.0.1",), servers=())
RECEIVE_LIMIT = 64 * 1024 * 1024
FLUSH_INTERVAL = 0.05
SENDABLE_CLOSE = set(range(1000, 1004)) | set(range(1007, 1012)) | set(range(3000, 5000))


def _fingerprint(sdp: Any) -> str | None:
    """Every ``a=fingerprint`` of an SDP, canonical like ``daemon.peer.dtls_fingerprints``:
    ``"sha-256 AB:CD:.."`` items (algorithm lower-case, hex upper-case), sorted, comma-joined."""
    if not isinstance(sdp, str):
        return None
    found = set()
    for line in sdp.splitlines():
        if line.startswith("a=fingerprint:"):
            algorithm, _, value = line[len("a=fingerprint:"):].strip().partition(" ")
            found.add(f"{algorithm.lower()} {value.strip().upper()}")
    return ",".join(sorted(found)) or None


async def _first(*events: trio.Event) -> None:
    """Wait until any of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:
            async def wait(event: trio.Event = event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


class Status:
    """The status file: rewritten atomically (temp file + rename) when marked dirty."""

    def __init__(self, path: Path, mode: str, upstream: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "pid": os.getpid(), "mode": mode, "upstream": upstream, "port": None, "ready": False,
            "stopped": False, "connections": 0, "open_connections": 0,
            "frames": {"client_to_server": 0, "server_to_client": 0}, "sessions": {},
        }
        self._dirty = False

    def session(self, session_id: str) -> dict[str, Any]:
        return self.data["sessions"].setdefault(session_id, {"intercepted": False})

    def changed(self, *, now: bool = False) -> None:
        self._dirty = True
        if now:
            self.write()

    def write(self) -> None:
        self._dirty = False
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def keep_written(self) -> None:
        while True:
            await trio.sleep(FLUSH_INTERVAL)
            if self._dirty:
                self.write()


class Leg:
    """A ``SignalChannel`` toward one party: sends are written into that party's signaling path,
    receives are the relay objects that party sent (handed over by the frame pumps)."""

    def __init__(self, write) -> None:
        self._write = write
        self._in, self._out = trio.open_memory_channel[dict[str, Any]](64)

    async def send(self, data: dict[str, Any]) -> None:
        try:
            await self._write(data)
        except ConnectionClosed as exc:
            raise PeerError(f"signaling socket closed: {exc}") from None

    async def receive(self) -> dict[str, Any]:
        return await self._out.receive()

    def deliver(self, data: dict[str, Any]) -> None:
        try:
            self._in.send_nowait(data)
        except trio.WouldBlock:
            pass


@dataclass(eq=False)
class Link:
    """One client socket (``down``) and our socket to the real server for it (``up``)."""

    down: WebSocketConnection
    up: WebSocketConnection
    hosting: set[str] = field(default_factory=set)  # sessions where this client is the host
    joined: set[str] = field(default_factory=set)  # sessions where this client is the joiner

    async def to_client(self, session: str, data: dict[str, Any]) -> None:
        """Write a relay to the client as if the server forwarded it from the other end."""
        await self.down.send_message(json.dumps({"type": "relay", "session": session, "data": data}))

    async def to_server(self, session: str, data: dict[str, Any]) -> None:
        """Relay ``data`` to the other end through the real server, as this client."""
        await self.up.send_message(json.dumps({"type": "relay", "session": session, "data": data}))


@dataclass(eq=False)
class Intercept:
    """One session we sit in the middle of; ``end`` is the party whose socket passes through us."""

    link: Link
    end: str  # "joiner" or "host"
    host: Leg  # toward the host (we are the answerer there)
    joiner: Leg  # toward the joiner (we are the offerer there)


class Relay:
    def __init__(self, upstream: str, mode: str, status: Status) -> None:
        self.upstream = upstream
        self.mode = mode
        self.status = status
        self.intercepts: dict[str, Intercept] = {}
        self.nursery: trio.Nursery | None = None

    # --- sockets ---------------------------------------------------------------------------

    async def handle(self, request: WebSocketRequest) -> None:
        accepted = False
        try:
            async with open_websocket_url(self.upstream, connect_timeout=10, disconnect_timeout=5) as up:
                down = await request.accept()
                accepted = True
                await self._serve(Link(down=down, up=up))
        except (HandshakeError, OSError, trio.TooSlowError) as exc:
            if accepted:
                raise
            status = getattr(exc, "status_code", None) or 502
            await request.reject(status if 400 <= status < 600 else 502)

    async def _serve(self, link: Link) -> None:
        self.status.data["connections"] += 1
        self.status.data["open_connections"] += 1
        self.status.changed()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._client_to_server, link, nursery.cancel_scope)
                nursery.start_soon(self._server_to_client, link, nursery.cancel_scope)
        finally:
            self.status.data["open_connections"] -= 1
            self.status.changed()

    async def _client_to_server(self, link: Link, scope: trio.CancelScope) -> None:
        try:
            while True:
                frame = await link.down.get_message()
                self.status.data["frames"]["client_to_server"] += 1
                if not self._from_client(link, frame):
                    await link.up.send_message(frame)
        except ConnectionClosed:
            reason = link.down.closed
            await self._close(link.up, reason.code if reason else None)
        finally:
            scope.cancel()

    async def _server_to_client(self, link: Link, scope: trio.CancelScope) -> None:
        try:
            while True:
                frame = await link.up.get_message()
                self.status.data["frames"]["server_to_client"] += 1
                if not self._from_server(link, frame):
                    await link.down.send_message(frame)
        except ConnectionClosed:
            reason = link.up.closed
            await self._close(link.down, reason.code if reason else None)
        finally:
            scope.cancel()

    @staticmethod
    async def _close(ws: WebSocketConnection, code: int | None) -> None:
        """Pass a close on with the same code; a lost socket (1005/1006) is passed on as a lost one."""
        with trio.move_on_after(5):
            try:
                if code in SENDABLE_CLOSE:
                    await ws.aclose(code)
                else:
                    await ws._stream.aclose()  # no close frame: the client sees an abnormal closure
            except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError, AttributeError):
                pass

    # --- frames ----------------------------------------------------------------------------

    @staticmethod
    def _parse(frame: str | bytes) -> dict[str, Any] | None:
        if not isinstance(frame, str):
            return None
        try:
            message = json.loads(frame)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def _note_sdp(self, session: str, data: Any, who: str) -> None:
        """Record the fingerprint of an offer/answer that went by unchanged."""
        if isinstance(data, dict) and data.get("kind") in ("offer", "answer"):
            key = "host_fingerprint" if data["kind"] == "offer" else "joiner_fingerprint"
            self.status.session(session)[key] = _fingerprint(data.get("sdp"))
            self.status.session(session)[f"{data['kind']}_via"] = who
            self.status.changed()

    def _from_client(self, link: Link, frame: str | bytes) -> bool:
        """Look at a client frame; return True if it was consumed (not to be forwarded)."""
        message = self._parse(frame)
        if message is None or message.get("type") != "relay" or not isinstance(message.get("session"), str):
            return False
        session, data = message["session"], message.get("data")
        intercept = self.intercepts.get(session)
        if intercept is not None and intercept.link is link:
            (intercept.joiner if intercept.end == "joiner" else intercept.host).deliver(data)
            return True
        if intercept is not None:  # both ends pass through us; the other link holds the session
            return False
        if (self.mode == "mitm" and session in link.hosting and isinstance(data, dict)
                and data.get("kind") == "offer"):
            self._intercept(link, session, "host", data)
            return True
        self._note_sdp(session, data, "client")
        return False

    def _from_server(self, link: Link, frame: str | bytes) -> bool:
        """Look at a server frame; return True if it was consumed (not to be forwarded)."""
        message = self._parse(frame)
        if message is None or not isinstance(message.get("session"), str):
            return False
        kind, session = message.get("type"), message["session"]
        if kind == "peer":
            link.hosting.add(session)
        elif kind == "joined":
            link.joined.add(session)
        if kind != "relay":
            return False
        data = message.get("data")
        intercept = self.intercepts.get(session)
        if intercept is not None and intercept.link is link:
            (intercept.host if intercept.end == "joiner" else intercept.joiner).deliver(data)
            return True
        if intercept is not None:
            return False
        if (self.mode == "mitm" and session in link.joined and isinstance(data, dict)
                and data.get("kind") == "offer"):
            self._intercept(link, session, "joiner", data)
            return True
        self._note_sdp(session, data, "server")
        return False

    # --- the man in the middle -------------------------------------------------------------

    def _intercept(self, link: Link, session: str, end: str, offer: dict[str, Any]) -> None:
        if end == "joiner":  # the joiner's socket is ours: the host is reached through the server
            host = Leg(lambda data: link.to_server(session, data))
            joiner = Leg(lambda data: link.to_client(session, data))
        else:  # the host's socket is ours: the joiner is reached through the server
            host = Leg(lambda data: link.to_client(session, data))
            joiner = Leg(lambda data: link.to_server(session, data))
        intercept = Intercept(link=link, end=end, host=host, joiner=joiner)
        self.intercepts[session] = intercept
        record = self.status.session(session)
        record.update(
            intercepted=True, end=end, host_fingerprint=_fingerprint(offer.get("sdp")),
            relay_offer_fingerprint=None, joiner_fingerprint=None, relay_answer_fingerprint=None,
            host_channel_open=False, joiner_channel_open=False, state="handshake", error=None, closed_first=None,
            host_to_joiner={"messages": 0, "bytes": 0}, joiner_to_host={"messages": 0, "bytes": 0},
        )
        host.deliver(offer)
        assert self.nursery is not None
        self.nursery.start_soon(self._middle, session, intercept, record)
        self.status.changed(now=True)

    async def _middle(self, session: str, intercept: Intercept, record: dict[str, Any]) -> None:
        """Both legs of one session: handshake each, then pump messages until one side closes."""
        channels: dict[str, Any] = {}
        both_open = trio.Event()
        finished = trio.Event()

        def note(leg: str, data: dict[str, Any]) -> None:
            fp = _fingerprint(data.get("sdp"))
            if leg == "host":
                record["relay_answer_fingerprint"] = fp
            else:
                record["relay_offer_fingerprint"] = fp
            self.status.changed()

        class Watched:
            """Wraps a leg to note the fingerprints that pass: ours going out, the peer's coming in."""

            def __init__(self, leg: Leg, name: str) -> None:
                self._leg, self._name = leg, name

            async def send(self, data: dict[str, Any]) -> None:
                note(self._name, data)
                await self._leg.send(data)

            async def receive(self) -> dict[str, Any]:
                data = await self._leg.receive()
                if self._name == "joiner" and isinstance(data, dict):
                    record["joiner_fingerprint"] = _fingerprint(data.get("sdp"))
                return data

        async def leg(name: str, signal_leg: Leg, role: Role) -> None:
            try:
                async with open_data_channel(Watched(signal_leg, name), role, ICE,
                                             receive_limit=RECEIVE_LIMIT) as channel:
                    channels[name] = channel
                    record[f"{name}_channel_open"] = True
                    self.status.changed(now=True)
                    if len(channels) == 2:
                        both_open.set()
                    await finished.wait()
            except PeerError as exc:
                record["error"] = record["error"] or f"{name} leg: {exc}"
                finished.set()

        async def pump(source: str, target: str, counter: dict[str, int]) -> None:
            try:
                while True:
                    message = await channels[source].receive()
                    await channels[target].send(message)
                    counter["messages"] += 1
                    counter["bytes"] += len(message)
                    self.status.changed()
            except trio.EndOfChannel:
                record["closed_first"] = record["closed_first"] or source
            except PeerError as exc:
                if channels[target].is_open:
                    record["error"] = record["error"] or f"{source} -> {target}: {exc}"
                else:
                    record["closed_first"] = record["closed_first"] or target
            finally:
                finished.set()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(leg, "host", intercept.host, Role.ANSWERER)
                nursery.start_soon(leg, "joiner", intercept.joiner, Role.OFFERER)
                with trio.move_on_after(60):
                    await _first(both_open, finished)
                if both_open.is_set():
                    record["state"] = "pumping"
                    self.status.changed(now=True)
                    nursery.start_soon(pump, "host", "joiner", record["host_to_joiner"])
                    nursery.start_soon(pump, "joiner", "host", record["joiner_to_host"])
                    await finished.wait()
                finished.set()
                for channel in channels.values():
                    channel.close()
        except Exception as exc:  # a bug or an unexpected failure: say so in the status, keep serving
            record["error"] = record["error"] or f"internal: {exc!r}"
        finally:
            record["state"] = "closed"
            self.status.changed(now=True)

    # --- main ------------------------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._stop_on_signals, nursery.cancel_scope)
            nursery.start_soon(self.status.keep_written)
            server = await nursery.start(serve_websocket, self.handle, "127.0.0.1", 0, None)
            self.status.data["port"] = server.port
            self.status.data["ready"] = True
            self.status.changed(now=True)

    @staticmethod
    async def _stop_on_signals(scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                scope.cancel()
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="the real signaling server, ws://HOST:PORT/signal/v1")
    parser.add_argument("--status", required=True, type=Path, help="JSON status file (replaced atomically)")
    parser.add_argument("--mode", choices=("mitm", "passthrough"), default="mitm")
    args = parser.parse_args(argv)
    status = Status(args.status, args.mode, args.upstream)

    async def run() -> None:
        try:
            await Relay(args.upstream, args.mode, status).run()
        finally:
            status.data["stopped"] = True
            status.write()

    bridge.run(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

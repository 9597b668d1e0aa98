"""``doorstep daemon``: the composition root. One trio program, one root nursery, every service in it.

Start-up order: state, STUN responder, signaling server, share host, control API; then the runtime file
(``<state_dir>/runtime.json``: pid and the bound ports) is written and "ready" is logged. SIGTERM and
SIGINT cancel the root nursery: transfers stop where they are, partial files stay resumable.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import version as package_version
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from control_api.app import create_app
from control_api.security import WebSettings, read_password_hash
from daemon.ice import IceConfig
from daemon.signaling import Limits, MemorySessionStore, SessionStore, SignalingServer
from daemon.state import OutboxQueue, StateDB
from daemon.state.library import LibraryStore
from daemon.state.mailbox import MailboxStore
from daemon.storage import Collision, Inbox, InboxRules, ShareSpool, write_secret_file

from .pairing import ensure_identity, rotate_identity

from .appliance import Appliance
from .outbox import AfterSend
from .mailbox import MailboxLimits, MailboxSetup
from .config import Config
from .settings import LiveSettings
from .coturn import coturn_settings, run_coturn
from .notify import notify, notify_best_effort, serve_watchdog
from .ice_servers import session_ice_servers
from .stun_server import StunServer
from .tokens import ensure_api_token
from .turn_secret import ensure_turn_secret

__all__ = ["run_daemon", "RUNTIME_FILE"]

log = logging.getLogger("doorstep")
RUNTIME_FILE = "runtime.json"


def _prepare_state_dir(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)


async def _serve_http(app, config: Config, *, task_status) -> None:
    hc = HypercornConfig()
    hc.bind = [str(config.http_listen)]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("doorstep.http")
    hc.graceful_timeout = 1.0
    hc.keep_alive_timeout = 75
    await hypercorn_serve(app, hc, task_status=task_status)


@asynccontextmanager
async def _session_store(config: Config, limits: Limits) -> AsyncIterator[SessionStore]:
    """The signaling store named by ``signal.store``: in memory, or shared through Redis.

    It is entered before the root nursery and left after it, so sockets still clean up their
    shared state while the services shut down.
    """
    if config.signal_store == "memory":
        yield MemorySessionStore(limits=limits)
        return
    from daemon.signaling.redis_store import RedisSessionStore  # coredis only when configured

    async with RedisSessionStore.open(config.signal_store, limits=limits) as store:
        log.info("signaling state shared through redis")
        yield store


def _signaling_limits(config: Config, http_port: int | None = None) -> Limits:
    """Default limits; browsers may connect from the configured origins and the web UI's own: the
    control API's port (``http_port`` once bound, if the configured one is 0) under each name its
    Host allowlist accepts (a page the appliance served)."""
    port = http_port if http_port is not None else config.http_listen.port
    own = {f"http://{config.http_listen.connect_host}:{port}"}
    own.update(f"http://{host if ':' not in host else f'[{host}]'}:{port}" for host in config.http_allowed_hosts)
    origins = {*config.signal_allowed_origins, *(origin.lower() for origin in own)}
    if config.http_public_url:
        scheme, _, rest = config.http_public_url.partition("://")
        origins.add(f"{scheme}://{rest.split('/', 1)[0]}".lower())
    return Limits(allowed_origins=frozenset(origins))


def _web_settings(config: Config) -> WebSettings:
    """Host allowlist, public URL and (if ``http.password_file`` is set) the web password's hash.
    Raises OSError if the password file cannot be read or holds no argon2id hash (so the CLI
    says "cannot start: ..." in one line)."""
    try:
        password_hash = read_password_hash(config.http_password_file) if config.http_password_file else None
    except ValueError as exc:
        raise OSError(f"http.password_file {config.http_password_file}: {exc}") from None
    return WebSettings(allowed_hosts=config.http_allowed_hosts, public_url=config.http_public_url,
                       password_hash=password_hash)


def _port_of(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


async def run_daemon(config: Config) -> None:
    """Run until SIGTERM/SIGINT. Raises OSError if a listener cannot bind."""
    web = _web_settings(config)  # a bad password file stops the start before anything is opened
    _prepare_state_dir(config.state_dir)
    db = StateDB(config.state_dir / "state.db")
    token = ensure_api_token(config.state_dir)
    identity = ensure_identity(config.state_dir)
    log.info("device id %s", identity.device_id)
    ice = IceConfig(addresses=config.ice_addresses, direct=config.transfer_direct)
    inbox = Inbox(config.inbox_dir, rules=InboxRules(max_transfer=config.inbox_max_transfer, reserve=config.inbox_reserve,
                                                     collision=Collision(config.inbox_collision)))
    spool = ShareSpool(config.state_dir / "shares")
    outbox_queue = OutboxQueue(config.state_dir / "state.db")
    library_store = LibraryStore(config.state_dir / "state.db")
    mailbox_store = MailboxStore(config.state_dir / "state.db")
    try:
        limits = _signaling_limits(config)
        async with _session_store(config, limits) as store, trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
            await nursery.start(serve_watchdog)  # WATCHDOG=1 from this loop, when systemd asks for it
            stun_port = stun = None
            if config.stun_enabled:  # embedded STUN responder; its URL goes to every session
                stun = StunServer(rate=config.stun_rate)
                stun_port = await nursery.start(stun.serve, config.stun_listen)
            if config.turn_enabled and not config.turn_url:  # the managed coturn, a supervised child
                secret = ensure_turn_secret(config.state_dir)
                await nursery.start(run_coturn, coturn_settings(config, secret), config.state_dir)
            ice_servers = session_ice_servers(config, stun_port=stun_port)
            signaling = SignalingServer(store, limits=limits, ice_servers=ice_servers)
            signal_port = await nursery.start(
                signaling.serve, config.signal_listen.host, config.signal_listen.port
            )
            http_url = config.http_public_url or f"http://{config.http_listen.connect_host}:{config.http_listen.port}"
            appliance = Appliance(
                db=db, inbox=inbox, spool=spool, ice=ice, signal_url=config.signal_url_for(signal_port),
                local_signal_url=config.local_signal_url(signal_port),
                http_url=http_url, share_ttl=config.share_ttl, version=package_version("doorstep"),
                identity=identity, name=socket.gethostname()[:64] or "doorstep", encrypt=config.transfer_encrypt,
                compress=config.transfer_compress,
                unpaired=config.inbox_unpaired, per_device=config.inbox_per_device,
                outbox_dir=config.outbox_dir, outbox_queue=outbox_queue,
                outbox_after_send=AfterSend(config.outbox_after_send), outbox_settle=config.outbox_settle,
                settings=LiveSettings(config), rotate_key=partial(rotate_identity, config.state_dir),
                upload_stall=config.http_upload_stall, library_store=library_store,
                mailbox=MailboxSetup(store=mailbox_store, root=config.state_dir / "mailbox", limits=MailboxLimits(
                    quota=config.mailbox_quota, per_sender=config.mailbox_per_sender, count=config.mailbox_count,
                    expiry=config.mailbox_expiry, retry_max=config.mailbox_retry)),
            )
            appliance.attach_statistics("signaling", signaling.statistics)
            if stun is not None:
                appliance.attach_statistics("stun", stun.statistics)
            await nursery.start(appliance.run)
            binds = await nursery.start(_serve_http, create_app(appliance, api_token=token, web=web), config)
            http_port = _port_of(binds[0])
            if config.http_listen.port == 0:  # pages come from the port the system chose
                signaling.limits = _signaling_limits(config, http_port)
                if not config.http_public_url:
                    appliance.set_http_url(f"http://{config.http_listen.connect_host}:{http_port}")
            runtime = {"pid": os.getpid(), "http_port": http_port, "signal_port": signal_port,
                       "signal_url": config.signal_url_for(signal_port), "stun_port": stun_port}
            write_secret_file(config.state_dir / RUNTIME_FILE, json.dumps(runtime).encode())
            log.info("ready: http on %s, signaling on port %d, inbox %s", binds[0], signal_port, config.inbox_dir)
            listening = [f"http {binds[0].partition('://')[2]}", f"signaling {config.signal_listen.host}:{signal_port}"]
            listening += [f"stun {config.stun_listen.host}:{stun_port}"] if stun_port is not None else []
            listening += [f"turn {config.turn_listen}"] if config.turn_enabled and not config.turn_url else []
            notify("READY=1", "STATUS=ready: " + ", ".join(listening))  # every listener is up
    finally:
        (config.state_dir / RUNTIME_FILE).unlink(missing_ok=True)
        inbox.close()
        outbox_queue.close()
        library_store.close()
        mailbox_store.close()
        db.close()
        log.info("stopped")


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s; shutting down", signal.Signals(signum).name)
            notify_best_effort("STOPPING=1", "STATUS=stopping")
            scope.cancel()
            return

"""The ``doorstep`` command line.

``daemon`` runs the appliance. ``receive``, and ``send`` without ``--to``/``--via-daemon``, work
standalone, with no local daemon: they speak signaling and WebRTC themselves. Everything else is a
thin client of the local daemon's control API (:class:`~daemon.runtime.cli_client.ApiClient`), one
module per command group: ``cli_send``, ``cli_shares``, ``cli_transfers`` (and ``status``),
``cli_inbox``, ``cli_devices`` (``pair``, ``peers``). The token comes from ``--token-stdin``,
``$DOORSTEP_TOKEN`` or the state dir, never from argv.

Exit codes: 0 success, 1 failure (``doorstep: <message>`` on stderr), 2 usage or token problem,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import cli_devices, cli_inbox, cli_send, cli_shares, cli_transfers
from . import cli_library
from .cli_client import ApiClient, CliError, daemon_url, resolve_token
from .cli_output import Output
from .config import ConfigError, load_config
from .journal_logging import configure_logging

__all__ = ["main"]

FLAG_KEYS = {
    "state_dir": "state_dir",
    "http_listen": "http.listen",
    "signal_listen": "signal.listen",
    "signal_public_url": "signal.public_url",
    "inbox_dir": "inbox.dir",
    "outbox_dir": "outbox.dir",
}


def _common_options(*, top_level: bool) -> argparse.ArgumentParser:
    """Options every API command takes, before or after its name. Below the top level their default
    is SUPPRESS: a subcommand not given one must not overwrite what the top level parsed
    (``doorstep --json peers list``)."""
    unset = {"json": False, "token_stdin": False, "url": None} if top_level else {}
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--json", action="store_true", default=unset.get("json", argparse.SUPPRESS),
                        help="one JSON document on stdout, for scripts")
    common.add_argument("--token-stdin", action="store_true", default=unset.get("token_stdin", argparse.SUPPRESS),
                        help="read the API token from stdin (one line) instead of $DOORSTEP_TOKEN or the state dir")
    common.add_argument("--url", default=unset.get("url", argparse.SUPPRESS),
                        help="the daemon's base URL (default: $DOORSTEP_URL, else from http.listen)")
    return common


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doorstep", description="Peer-to-peer file transfer appliance.",
                                     allow_abbrev=False, parents=[_common_options(top_level=True)])
    parser.add_argument("--config", type=Path, default=os.environ.get("DOORSTEP_CONFIG"),
                        help="TOML config file (default: $DOORSTEP_CONFIG, else embedded defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common = _common_options(top_level=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    daemon = sub.add_parser("daemon", help="run the appliance in the foreground", allow_abbrev=False)
    for flag in FLAG_KEYS:
        daemon.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None)

    receive = sub.add_parser("receive", help="fetch a share by its code or link, P2P, SHA-256 verified",
                             allow_abbrev=False)
    receive.add_argument("code", help="the 6-digit code, or the share link (http://host/r/123456)")
    receive.add_argument("--out", type=Path, default=Path("."), help="folder to receive into (default: .)")
    receive.add_argument("--signal", help="signaling URL (default: from the link, $DOORSTEP_SIGNAL_URL, or config)")

    send = sub.add_parser("send", parents=[common], allow_abbrev=False,
                          help="send files or folders: standalone (prints a code and waits for the receiver), "
                               "or through the local daemon with --to DEVICE or --via-daemon")
    send.add_argument("paths", nargs="+", type=Path, metavar="FILE")
    send.add_argument("--signal", help="standalone: signaling URL (default: $DOORSTEP_SIGNAL_URL or config)")
    cli_send.register(send)
    send.set_defaults(handler=cli_send.send_via_daemon)

    cli_transfers.register(sub, common)
    cli_devices.register(sub, common)
    cli_shares.register(sub, common)
    cli_inbox.register(sub, common)
    cli_library.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)  # journal under systemd, else stderr
    if not args.verbose:
        for noisy in ("aioice", "aiortc", "httpx", "httpcore", "hypercorn", "trio-websocket"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        overrides = {key: getattr(args, flag, None) for flag, key in FLAG_KEYS.items()}
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"doorstep: {exc}", file=sys.stderr)
        return 2
    if args.command == "daemon":
        from daemon.runtime import bridge
        from .daemon import run_daemon

        failure: BaseExceptionGroup | None = None
        try:
            bridge.run(run_daemon, config)
        except* OSError as group:  # a port in use, an unreachable Redis, an unwritable state dir
            failure = group
        if failure is not None:
            for exc in _leaves(failure):
                print(f"doorstep: cannot start: {exc}", file=sys.stderr)
            return 1
        return 0
    standalone_send = args.command == "send" and not (args.to or args.via_daemon)
    if args.command == "receive" or standalone_send:
        if args.json or args.token_stdin or args.url:
            print("doorstep: --json, --token-stdin and --url are for commands that use the local daemon "
                  "(send --to DEVICE, send --via-daemon, status, ...)", file=sys.stderr)
            return 2
        from . import standalone

        return (standalone.receive if args.command == "receive" else standalone.send)(args, config)
    out = Output(json=args.json)
    try:
        token = resolve_token(config, from_stdin=args.token_stdin)
        with ApiClient(daemon_url(config, args.url), token) as client:
            return args.handler(args, client, out)
    except CliError as exc:
        print(f"doorstep: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("doorstep: interrupted", file=sys.stderr)
        return 130


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [leaf for exc in group.exceptions
            for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])]


if __name__ == "__main__":
    sys.exit(main())

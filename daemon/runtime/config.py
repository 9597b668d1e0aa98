"""Configuration: embedded defaults, then a TOML file, then ``<state_dir>/settings.json``, then
``DOORSTEP_*`` env vars, then flags (each layer overrides the ones before it).

Every key has a dotted name (``http.listen``); its env var is ``DOORSTEP_`` + the name upper-cased
with dots as underscores (``DOORSTEP_HTTP_LISTEN``). Values are validated once, here, and errors name
the key and where the bad value came from.

``settings.json`` holds what the owner changed through the control API (``PATCH /api/v1/settings``),
only keys of :data:`SETTABLE`, as JSON values. The daemon writes it (0600); an env var or a flag
still wins over it at the next start.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from daemon.ice import parse_addresses

__all__ = ["Config", "ConfigError", "Listen", "load_config", "default_allowed_hosts", "KEYS", "SETTABLE",
           "SETTINGS_FILE", "parse_value", "read_settings_file"]

SETTINGS_FILE = "settings.json"
"""In the state dir: the owner's changes made through the control API."""


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key and its source."""


@dataclass(frozen=True, slots=True)
class Listen:
    """A TCP/UDP listen address. ``host`` '' means every interface."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """Parse ``host:port``, ``:port`` or ``[v6]:port``."""
        host, sep, port_text = text.strip().rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r} is not host:port")
        host = host.strip("[]")
        if host and host != "localhost":
            ipaddress.ip_address(host)  # raises ValueError for garbage
        return cls(host, int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def connect_host(self) -> str:
        """Where a local client should connect: the wildcard becomes loopback."""
        if self.host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host


# dotted key -> (default, parser). Relative paths are taken relative to the working directory.
KEYS: dict[str, tuple[str, Any]] = {
    "state_dir": (".state", Path),
    "http.listen": ("127.0.0.1:8080", Listen.parse),
    "http.public_url": ("", str),
    "http.allowed_hosts": ("", lambda v: _parse_hosts(v)),
    "http.password_file": ("", lambda v: Path(v.strip()) if v.strip() else None),
    "http.upload_stall": ("60", lambda v: _parse_positive(v)),
    "signal.listen": ("127.0.0.1:8081", Listen.parse),
    "signal.public_url": ("", str),
    "signal.store": ("memory", lambda v: _parse_store(v)),
    "signal.allowed_origins": ("", lambda v: _parse_origins(v)),
    "transfer.encrypt": ("false", lambda v: _parse_bool(v)),
    "transfer.direct": ("true", lambda v: _parse_bool(v)),
    "transfer.compress": ("true", lambda v: _parse_bool(v)),
    "stun.listen": ("127.0.0.1:3478", Listen.parse),
    "stun.enabled": ("true", lambda v: _parse_bool(v)),
    "stun.rate": ("20", lambda v: _parse_positive(v)),
    "turn.enabled": ("false", lambda v: _parse_bool(v)),
    "turn.listen": ("127.0.0.1:3479", Listen.parse),
    "turn.relay_ports": ("49160-49359", lambda v: _parse_port_range(v)),
    "turn.external_ip": ("", str),
    "turn.realm": ("doorstep", str),
    "turn.ttl": ("600", lambda v: _parse_ttl(v)),
    "turn.url": ("", lambda v: _parse_turn_url(v)),
    "turn.secret_file": ("", str),
    "ice.public_host": ("", lambda v: _parse_public_host(v)),
    "inbox.dir": ("", str),
    "inbox.unpaired": ("hold", lambda v: _parse_choice(v, ("hold", "refuse"))),
    "inbox.per_device": ("false", lambda v: _parse_bool(v)),
    "inbox.max_transfer": ("0", lambda v: _parse_bytes(v)),
    "inbox.reserve": ("256MiB", lambda v: _parse_bytes(v)),
    "inbox.collision": ("rename", lambda v: _parse_choice(v, ("rename", "skip"))),
    "outbox.dir": ("", str),
    "outbox.after_send": ("move", lambda v: _parse_choice(v, ("move", "delete", "keep"))),
    "outbox.settle": ("2", lambda v: _parse_positive(v)),
    "ice.addresses": ("", parse_addresses),
    "share.ttl": ("86400", lambda v: _parse_positive(v)),
    "mailbox.quota": ("10GiB", lambda v: _parse_bytes(v)),
    "mailbox.per_sender": ("2GiB", lambda v: _parse_bytes(v)),
    "mailbox.count": ("1000", lambda v: int(_parse_positive(v))),
    "mailbox.expiry": ("1209600", lambda v: _parse_positive(v)),
    "mailbox.retry": ("60", lambda v: _parse_positive(v)),
}


SETTABLE = frozenset({"inbox.unpaired", "inbox.per_device", "transfer.encrypt", "outbox.after_send", "share.ttl"})
"""The keys the owner may change while the daemon runs (``PATCH /api/v1/settings``)."""

_BYTES_RE = re.compile(r"([0-9]+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_value(key: str, value: str) -> Any:
    """Parse ``value`` as the key's parser does. Raises ``KeyError`` for an unknown key,
    ``ValueError`` for a bad value."""
    return KEYS[key][1](value)


def _parse_bytes(value: str) -> int:
    """A byte count: digits, optionally followed by K, M, G or T (binary: 1 KiB = 1024 bytes),
    with an optional ``B``/``iB``: ``0``, ``1048576``, ``256MiB``, ``2G``."""
    match = _BYTES_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a byte count like 1048576, 256MiB or 2G")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean")


def _parse_store(value: str) -> str:
    """``memory`` (one instance) or the URL of a Redis shared by several instances."""
    text = value.strip()
    if text == "memory":
        return text
    scheme, sep, rest = text.partition("://")
    if sep and scheme in ("redis", "rediss", "unix") and rest:
        return text
    raise ValueError(f"{value!r} is neither 'memory' nor a redis://, rediss:// or unix:// URL")


def _parse_origins(value: str) -> frozenset[str]:
    """Comma list of browser origins, ``scheme://host[:port]`` each."""
    origins = set()
    for item in filter(None, (part.strip() for part in value.split(","))):
        scheme, sep, rest = item.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ValueError(f"{item!r} is not an origin like https://host[:port]")
        origins.add(item.lower())
    return frozenset(origins)


def _parse_hosts(value: str) -> frozenset[str]:
    """Comma list of host names or IP addresses (no port) the control API answers to."""
    hosts = set()
    for item in filter(None, (part.strip().lower() for part in value.split(","))):
        host = item.strip("[]").removesuffix(".")
        try:
            hosts.add(str(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        labels = host.split(".")
        if len(host) > 253 or not all(
            label and len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() and label.isascii()
            for label in labels
        ):
            raise ValueError(f"{item!r} is neither a host name nor an IP address (no port, no scheme)")
        hosts.add(host)
    return frozenset(hosts)


def default_allowed_hosts(listen: Listen, public_url: str) -> frozenset[str]:
    """``http.allowed_hosts`` when unset: loopback names, the listen address, this machine's
    host name (also ``<name>.local``) and the host of ``http.public_url``."""
    hosts = {"localhost", "127.0.0.1", "::1"}
    if listen.host not in ("", "0.0.0.0", "::"):
        hosts.add(listen.host.lower())
    name = socket.gethostname().lower().removesuffix(".")
    if name:
        hosts |= {name, name.split(".")[0] + ".local"}
    if public_url:
        netloc = public_url.partition("://")[2].split("/", 1)[0].rpartition("@")[2]
        host = netloc[1:].partition("]")[0] if netloc.startswith("[") else netloc.partition(":")[0]
        if host:
            hosts.add(host.lower().removesuffix("."))
    return frozenset(hosts)


def _parse_choice(value: str, choices: tuple[str, ...]) -> str:
    if value.strip() not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
    return value.strip()


def _parse_port_range(value: str) -> tuple[int, int]:
    """``low-high``: UDP ports coturn may relay on (1024..65535, low <= high)."""
    low, sep, high = value.strip().partition("-")
    if not sep or not low.isdigit() or not high.isdigit() or not 1024 <= int(low) <= int(high) <= 65535:
        raise ValueError(f"{value!r} is not a port range like 49160-49359")
    return int(low), int(high)


def _parse_turn_url(value: str) -> str:
    """'' or a ``turn:``/``turns:`` URL (printable ASCII, no spaces) handed to peers as is."""
    text = value.strip()
    if text and (not text.startswith(("turn:", "turns:")) or not all("!" <= c <= "~" for c in text)):
        raise ValueError(f"{value!r} is not a turn: or turns: URL like turn:turn.example.org:3478")
    return text


def _parse_public_host(value: str) -> str:
    """'' or the host name or IP address put into the STUN/TURN URLs handed to peers."""
    text = value.strip().strip("[]")
    if not text:
        return ""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        if address.version == 6:  # aiortc cannot parse stun:/turn: URLs with IPv6 literals
            raise ValueError(f"{value!r}: use a host name (or an IPv4 address) for IPv6 peers")
        return str(address)
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or not all(
        label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii() for label in labels
    ):
        raise ValueError(f"{value!r} is neither a host name nor an IP address")
    return text


def _parse_ttl(value: str) -> float:
    """TURN credential lifetime in seconds: positive, at most 600 (10 minutes)."""
    ttl = _parse_positive(value)
    if ttl > 600:
        raise ValueError(f"{value!r} is longer than 600 s; TURN credentials live 10 minutes at most")
    return ttl


def _parse_positive(value: str) -> float:
    number = float(value)
    if not number > 0 or not math.isfinite(number):
        raise ValueError(f"{value!r} is not a positive number")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    state_dir: Path
    http_listen: Listen
    http_public_url: str
    http_allowed_hosts: frozenset[str]
    """Host names the control API answers to (DNS-rebinding defence; IP literals always pass);
    unset, :func:`default_allowed_hosts`."""
    http_password_file: Path | None
    """A file holding an argon2id hash (``nacl.pwhash.argon2id.str``) that enables password login
    in the web UI; None: the web UI logs in with the API token only."""
    http_upload_stall: float
    """Seconds an upload may go without a byte before it is failed and its partial file removed
    (a client that lost its network just goes quiet)."""
    signal_listen: Listen
    signal_public_url: str
    signal_store: str
    """``memory``, or the URL of the Redis that several daemons share signaling state through."""
    signal_allowed_origins: frozenset[str]
    """Browser origins allowed to open signaling sockets besides the control API's own."""
    stun_listen: Listen
    stun_enabled: bool
    """Run the embedded STUN responder (Binding requests only) on ``stun.listen``."""
    stun_rate: float
    """STUN requests per second answered per source address (a burst of twice that is allowed)."""
    turn_enabled: bool
    """Supervise a coturn child (or, with ``turn.url``, hand out an external TURN server)."""
    turn_listen: Listen
    turn_relay_ports: tuple[int, int]
    turn_external_ip: str
    """``public[/private]`` for a home server behind a NAT (coturn's external-ip); '' if none."""
    turn_realm: str
    turn_ttl: float
    """Lifetime of minted TURN credentials (TURN REST scheme), at most 600 s."""
    turn_url: str
    """An external TURN server (``turn:host:port``) instead of the managed coturn; '' for ours."""
    turn_secret_file: str
    """The external TURN server's shared secret (a file, 0600); ours is generated in the state dir."""
    ice_public_host: str
    """Host name or address that STUN/TURN URLs handed to peers carry; '' derives it from the
    listen addresses."""
    inbox_dir: Path
    inbox_unpaired: str
    """What a push from a device that is not paired gets: ``hold`` (received, verified, and kept
    out of the inbox until the owner approves the device) or ``refuse``."""
    inbox_per_device: bool
    """Place pushes from paired devices under ``<inbox>/<device name>/``."""
    inbox_max_transfer: int
    """Largest transfer the inbox accepts, in bytes (0: no limit); larger offers are refused."""
    inbox_reserve: int
    """Free bytes kept on the inbox's disk: an offer that would leave less is refused."""
    inbox_collision: str
    """A file arriving under a taken name: ``rename`` (``name (1).ext``) or ``skip`` (not stored
    again when the file there has the same size and SHA-256; renamed otherwise)."""
    outbox_dir: Path
    outbox_after_send: str
    """What becomes of a file of the outbox once its device has it: ``move`` (to ``sent/`` in
    its folder), ``delete`` or ``keep`` (that version is never sent again)."""
    outbox_settle: float
    """Seconds a dropped file must stay unchanged before it is sent."""
    ice_addresses: tuple[str, ...] | None
    share_ttl: float
    transfer_encrypt: bool
    """Seal DATA frames (secretstream) on top of DTLS; both peers must agree."""
    transfer_direct: bool
    transfer_compress: bool
    """Offer zstd compression of DATA frames (used where both sides offer it and frames are not sealed)."""
    """Offer the peer a direct TCP path after authentication (docs/protocol.md, "The direct
    path"); either side saying no keeps the transfer on the data channel."""

    mailbox_quota: int = 10 << 30
    """Bytes of sealed bundles the mailbox keeps for others, all senders together (docs/mailbox.md)."""
    mailbox_per_sender: int = 2 << 30
    """Bytes of sealed bundles the mailbox keeps from one sending device."""
    mailbox_count: int = 1000
    """Sealed bundles the mailbox keeps at once."""
    mailbox_expiry: float = 1209600.0
    """Seconds a bundle is kept undelivered (14 days) before it is dropped."""
    mailbox_retry: float = 60.0
    """Longest wait, in seconds, between two attempts to push a bundle on."""

    @property
    def signal_url(self) -> str:
        """The signaling URL clients are told to use."""
        return self.signal_public_url or f"ws://{self.signal_listen.connect_host}:{self.signal_listen.port}/signal/v1"

    def local_signal_url(self, port: int) -> str:
        """Where this daemon reaches its own signaling server (never through the public URL,
        which behind a home NAT would need the router to loop back)."""
        return f"ws://{self.signal_listen.connect_host}:{port}/signal/v1"

    def signal_url_for(self, port: int) -> str:
        """The URL of our own signaling server once bound to ``port`` (port 0 resolves at start)."""
        if self.signal_public_url:
            return self.signal_public_url
        return f"ws://{self.signal_listen.connect_host}:{port}/signal/v1"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


def env_name(key: str) -> str:
    return "DOORSTEP_" + key.upper().replace(".", "_")


def load_config(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str | None] | None = None,
) -> Config:
    """Merge defaults, the TOML file at ``path``, ``<state_dir>/settings.json`` (if there and
    readable), the environment and ``overrides`` (flags; None = unset), in that order.

    Raises ConfigError for unknown keys in the file, unreadable files, a malformed settings file
    and invalid values.
    """
    environ = os.environ if environ is None else environ
    layers: list[dict[str, tuple[str, str]]] = []
    if path is not None:
        try:
            table = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        layer = {}
        for key, value in _flatten(table).items():
            if key not in KEYS:
                raise ConfigError(f"config file {path}: unknown key {key!r}")
            layer[key] = (value, str(path))
        layers.append(layer)
    late = [{key: (environ[env_name(key)], env_name(key)) for key in KEYS if env_name(key) in environ},
            {key: (value, "command line") for key, value in (overrides or {}).items() if value is not None}]
    state_dir_text = KEYS["state_dir"][0]
    for layer in layers + late:
        state_dir_text = layer.get("state_dir", (state_dir_text, ""))[0]
    settings_path = Path(state_dir_text) / SETTINGS_FILE
    settings = read_settings_file(settings_path)
    layers.append({key: (value, str(settings_path)) for key, value in settings.items()})
    raw: dict[str, tuple[str, str]] = {key: (default, "default") for key, (default, _) in KEYS.items()}
    for layer in layers + late:
        raw.update(layer)
    values: dict[str, Any] = {}
    for key, (text, source) in raw.items():
        try:
            values[key] = KEYS[key][1](text)
        except ValueError as exc:
            raise ConfigError(f"{key} (from {source}): {exc}") from None
    return _build(values)


def read_settings_file(path: Path) -> dict[str, str]:
    """The settings saved at ``path`` (dotted key -> value as text, for the key's parser); {} if
    the file does not exist or cannot be read by this user (a CLI run by someone else than the
    daemon's user). Raises ConfigError for a malformed file or a key outside :data:`SETTABLE`."""
    try:
        text = path.read_text()
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigError(f"settings file {path}: {exc}") from None
    try:
        saved = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"settings file {path}: not JSON: {exc}") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"settings file {path}: not a JSON object")
    out: dict[str, str] = {}
    for key, value in saved.items():
        if key not in SETTABLE:
            raise ConfigError(f"settings file {path}: {key!r} cannot be set there")
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (int, float, str)):
            out[key] = str(value)
        else:
            raise ConfigError(f"settings file {path}: {key}: {value!r} is not a string, number or boolean")
    return out


def _build(values: dict[str, Any]) -> Config:
    state_dir: Path = values["state_dir"]
    inbox = Path(values["inbox.dir"]) if values["inbox.dir"] else state_dir / "inbox"
    outbox = Path(values["outbox.dir"]) if values["outbox.dir"] else state_dir / "outbox"
    kwargs = {f.name: values.get(f.name.replace("_", ".", 1)) for f in fields(Config)}
    kwargs.update(state_dir=state_dir, inbox_dir=inbox, outbox_dir=outbox)
    if not kwargs["http_allowed_hosts"]:
        kwargs["http_allowed_hosts"] = default_allowed_hosts(kwargs["http_listen"], kwargs["http_public_url"])
    if kwargs["turn_enabled"] and kwargs["turn_url"] and not kwargs["turn_secret_file"]:
        raise ConfigError("turn.url (an external TURN server) needs turn.secret_file, its shared secret")
    return Config(**kwargs)

"""Brokers: the embedded one (amqtt, in-process, loopback only) and a mosquitto config writer.

Embedded: `EmbeddedBroker` runs amqtt 0.12.1 (MQTT 3.1.1 only; `core.bus` speaks 3.1.1) inside the
core's event loop on 127.0.0.1 -- never 0.0.0.0, whatever amqtt's defaults say -- on a free or given
port, with anonymous access (reachable from this host only). It is what `looptool core` starts when
no `--broker` is given; for anything shared, run mosquitto with `looptool broker config DIR`.

`write_mosquitto_config(DIR)` writes:

    DIR/mosquitto.conf        listener PORT 127.0.0.1, allow_anonymous false, password_file, acl_file
    DIR/passwd                users core, operator, viewer; mosquitto's PBKDF2-SHA512 `$7$` hashes
    DIR/acl                   core: readwrite looptool/#; operator: read looptool/#, write cmd + console
                              presence; viewer: read looptool/#
    DIR/credentials/<role>    `role:password`, 0600 (feed to --broker-credentials)

Run-as-root: mosquitto started as root drops to user `mosquitto` and then cannot read a root-owned
0600 password file. When that user exists the password and ACL files are chowned to it (and DIR is
made traversable); `root_user=True` writes `user root` instead, for throw-away CI containers only.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

from core.errors import UserError

log = logging.getLogger("looptool.broker")

LOOPBACK = "127.0.0.1"
ROLES = ("core", "operator", "viewer")
PBKDF2_ITERATIONS = 101  # mosquitto_passwd 2.0's default for $7$


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# -- embedded (amqtt) -------------------------------------------------------------------------------

class EmbeddedBroker:
    """amqtt in this process's event loop; `url` is set once started."""

    def __init__(self, port: int | None = None):
        self.port = port
        self._broker = None
        self.url: str | None = None

    async def start(self) -> str:
        from amqtt.broker import Broker

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        tries = 1 if self.port else 5
        last: Exception | None = None
        for _ in range(tries):
            port = self.port or free_port()
            config = {
                "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
                # anonymous is acceptable only because the one listener is loopback
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
            broker = Broker(config)
            try:
                await broker.start()
            except Exception as e:  # port taken between free_port() and bind: try another
                last = e
                continue
            self._broker, self.port = broker, port
            self.url = f"mqtt://{LOOPBACK}:{port}"
            return self.url
        raise UserError(f"embedded broker: cannot listen on {LOOPBACK}:{self.port or 'a free port'} ({last})")

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            try:
                await broker.shutdown()
            except Exception as e:
                log.debug("embedded broker shutdown: %s", e)


# -- mosquitto config -------------------------------------------------------------------------------

def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """mosquitto's `$7$` format: $7$<iterations>$<b64 salt>$<b64 PBKDF2-HMAC-SHA512(password, salt)>."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text() -> str:
    return (
        "# looptool roles (written by `looptool broker config`)\n"
        "user core\n"
        "topic readwrite looptool/#\n"
        "\n"
        "user operator\n"
        "topic read looptool/#\n"
        "topic write looptool/v1/+/cmd/#\n"
        "topic write looptool/v1/console/#\n"
        "\n"
        "user viewer\n"
        "topic read looptool/#\n"
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _read_password_file(path: str, role: str) -> str:
    p = Path(path)
    try:
        text = p.read_text().strip()
    except OSError as e:
        raise UserError(f"{p}: cannot read the {role} password ({e.strerror})") from None
    if not text or "\n" in text:
        raise UserError(f"{p}:1: expected the {role} password on one line")
    if ":" in text:
        text = text.split(":", 1)[1]
    return text


def write_mosquitto_config(directory: str | os.PathLike, *, port: int = 1883, persistence: bool = False,
                           passwords: dict[str, str] | None = None, root_user: bool = False,
                           use_mosquitto_passwd: bool = True) -> dict:
    """Write the config, password file, ACL and per-role credentials; returns their paths.
    `passwords` maps a role to a given password; the others are generated."""
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port}: not a TCP port")
    given = passwords or {}
    for role in given:
        if role not in ROLES:
            raise UserError(f"unknown broker role {role!r}; roles are {', '.join(ROLES)}")
    pw = {role: given.get(role) or secrets.token_urlsafe(24) for role in ROLES}
    passwd, acl, conf = d / "passwd", d / "acl", d / "mosquitto.conf"
    creds = {}
    for role in ROLES:
        creds[role] = d / "credentials" / role
        _write_private(creds[role], f"{role}:{pw[role]}\n")
    os.chmod(d / "credentials", 0o700)

    tool = shutil.which("mosquitto_passwd") if use_mosquitto_passwd else None
    _write_private(passwd, "")
    if tool:
        for role in ROLES:
            r = subprocess.run([tool, "-b", str(passwd), role, pw[role]], capture_output=True, text=True)
            if r.returncode != 0:
                raise UserError(f"mosquitto_passwd failed for {role}: {r.stderr.strip() or r.stdout.strip()}")
    else:
        _write_private(passwd, "".join(f"{role}:{mosquitto_hash(pw[role])}\n" for role in ROLES))
    _write_private(acl, acl_text())
    os.chmod(passwd, 0o600)

    lines = [
        "# looptool broker (written by `looptool broker config`)",
        f"listener {port} {LOOPBACK}",
        "allow_anonymous false",
        f"password_file {passwd}",
        f"acl_file {acl}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if persistence:
        store = d / "data"
        store.mkdir(exist_ok=True)
        lines += ["persistence true", f"persistence_location {store}/"]
    else:
        lines.append("persistence false")
    owner_note = None
    if root_user:
        lines += ["# throw-away CI only: the broker keeps root rights", "user root"]
    elif os.geteuid() == 0:
        owner_note = _hand_to_mosquitto_user(d, [passwd, acl], persistence)
    conf.write_text("\n".join(lines) + "\n")
    return {"config": conf, "passwd": passwd, "acl": acl, "credentials": creds, "port": port,
            "hashed_with": "mosquitto_passwd" if tool else "hashlib", "owner_note": owner_note}


def _hand_to_mosquitto_user(d: Path, files: list[Path], persistence: bool) -> str:
    """As root, mosquitto drops to user `mosquitto`: give it the password and ACL files."""
    try:
        ent = pwd.getpwnam("mosquitto")
    except KeyError:
        return ("no 'mosquitto' user here: run mosquitto as the user that owns these files, or add "
                "`user root` (--root-user) for a throw-away CI broker")
    for f in files:
        os.chown(f, ent.pw_uid, ent.pw_gid)
    os.chmod(d, 0o755)
    if persistence:
        os.chown(d / "data", ent.pw_uid, ent.pw_gid)
    return "password and ACL files chowned to user mosquitto (mosquitto drops to it when started as root)"

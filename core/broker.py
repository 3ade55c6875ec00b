"""Brokers: the embedded one (amqtt, in-process, loopback only) and a mosquitto config writer.

Who may do what is one table, ROLE_TOPICS (topic filters a role may read and write), used by both.

Embedded: `EmbeddedBroker` runs amqtt 0.12.1 (MQTT 3.1.1 only; `core.bus` speaks 3.1.1) inside the
core's event loop on 127.0.0.1 -- never 0.0.0.0, whatever amqtt's defaults say -- on a free or given
port. It is what `looptool core` starts when no `--broker` is given; for anything shared, run
mosquitto with `looptool broker config DIR`. No anonymous access: amqtt's own plugins check every
client (AnonymousAuthPlugin with allow_anonymous false, FileAuthPlugin on argon2 hashes,
TopicAccessControlListPlugin on ROLE_TOPICS) for two users with random passwords, new on each start:

    core     read and write looptool/#   the core itself, and a console that commands it
    viewer   read looptool/#, write none `looptool console --read-only`

With a core id, each password is written to $LOOPTOOL_HOME/cores/<core-id>.<role>.credentials (0600,
atomically, `role:password`: the --broker-credentials format) before the discovery file names the
broker; `looptool console` reads the one its mode needs, and the files go when the broker stops.

`write_mosquitto_config(DIR)` writes:

    DIR/mosquitto.conf        listener PORT 127.0.0.1, allow_anonymous false, password_file, acl_file
    DIR/passwd                users core, operator, viewer; mosquitto's PBKDF2-SHA512 `$7$` hashes
    DIR/acl                   core: readwrite looptool/#; operator: read looptool/#, write cmd + console
                              presence; viewer: read looptool/#
    DIR/credentials/<role>    `role:password`, 0600 (feed to --broker-credentials)

A re-run keeps the passwords in DIR/credentials/ (`rotate=True` makes new ones), never loosens DIR's
mode, and never puts a password on a command line: mosquitto_passwd gets them in a 0600 file (`-U`).
Every file is written whole (a temp file renamed over it) once everything is computed.

Run-as-root: mosquitto started as root drops to user `mosquitto` and then cannot read a root-owned
0600 password file. When that user exists the password and ACL files are chowned to it (DIR's mode is
left alone: the returned note says when that user cannot traverse DIR); `root_user=True` writes
`user root` instead, for throw-away CI containers only.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

from core.errors import UserError

log = logging.getLogger("looptool.broker")

LOOPBACK = "127.0.0.1"
PBKDF2_ITERATIONS = 101  # mosquitto_passwd 2.0's default for $7$

# role -> (topic filters it may read, topic filters it may write)
ROLE_TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "core": (("looptool/#",), ("looptool/#",)),
    "operator": (("looptool/#",), ("looptool/v1/+/cmd/#", "looptool/v1/console/#")),
    "viewer": (("looptool/#",), ()),
}
ROLES = tuple(ROLE_TOPICS)  # mosquitto's users
EMBEDDED_ROLES = ("core", "viewer")  # the embedded broker's users


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


# -- files that hold secrets -----------------------------------------------------------------------

def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """`text` to `path` whole: a temp file created 0600 beside it, fsynced, given `mode`, renamed over
    it. A reader sees the old file or the new one, never part of one, and never a wider mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- embedded (amqtt) -------------------------------------------------------------------------------

def embedded_credentials_path(core_id: str, role: str) -> Path:
    """$LOOPTOOL_HOME/cores/<core-id>.<role>.credentials: `role:password` of a core's embedded broker."""
    from core import busproto as bp
    from core.discovery import discovery_dir

    if role not in EMBEDDED_ROLES:
        raise ValueError(f"embedded broker roles are {', '.join(EMBEDDED_ROLES)}, not {role!r}")
    return discovery_dir() / f"{bp.check_id(core_id)}.{role}.credentials"


def _argon2_hashes(passwords: dict[str, str]) -> str:
    """FileAuthPlugin's password file: `user:<argon2 hash>` lines, hashed with pwdlib's Argon2Hasher
    (the hasher the plugin verifies with). Cheap parameters on purpose: the passwords are 144-bit
    random tokens, so a slow hash adds nothing against guessing, and amqtt verifies each CONNECT in
    the core's event loop."""
    from pwdlib.hashers.argon2 import Argon2Hasher

    hasher = Argon2Hasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    return "".join(f"{user}:{hasher.hash(pw)}\n" for user, pw in passwords.items())


def amqtt_plugins(password_file: str) -> dict:
    """The embedded broker's plugins (amqtt 0.12.1's dataclass configs): no anonymous access, the
    users of `password_file`, and ROLE_TOPICS for EMBEDDED_ROLES. A role with no write filters may
    publish nothing (the ACL plugin refuses a user whose list is empty)."""
    roles = {role: ROLE_TOPICS[role] for role in EMBEDDED_ROLES}
    return {
        # a session without a username fails here (FileAuthPlugin alone would only abstain)
        "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
        "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": password_file},
        # `acl` is 0.12.1's subscribe list (its Config has no `subscribe_acl` field yet)
        "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
            "acl": {role: list(read) for role, (read, _) in roles.items()},
            "publish_acl": {role: list(write) for role, (_, write) in roles.items()},
        },
    }


class EmbeddedBroker:
    """amqtt in this process's event loop; `url` (host and port, no password) is set once started.
    `login(role)` is (user, password) for EMBEDDED_ROLES; with `core_id` the passwords are also
    written to embedded_credentials_path() on start and removed on stop."""

    def __init__(self, port: int | None = None, *, core_id: str | None = None):
        self.port = port
        self.core_id = core_id
        self._passwords = {role: secrets.token_urlsafe(24) for role in EMBEDDED_ROLES}
        self._broker = None
        self._written: dict[Path, str] = {}  # credentials file -> its role
        self.url: str | None = None

    def login(self, role: str) -> tuple[str, str]:
        return role, self._passwords[role]

    async def start(self) -> str:
        from amqtt.broker import Broker

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        hashes = _argon2_hashes(self._passwords)
        tries = 1 if self.port else 5
        last: Exception | None = None
        for _ in range(tries):
            port = self.port or free_port()
            # FileAuthPlugin reads its file when the Broker is built: it lives only that long
            fd, hash_file = tempfile.mkstemp(prefix="looptool-amqtt-", suffix=".passwd")
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(hashes)
                config = {"listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{port}"}},
                          "plugins": amqtt_plugins(hash_file)}
                with warnings.catch_warnings():  # amqtt 0.12.1 calls its own `acl` option deprecated
                    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"amqtt\.")
                    broker = Broker(config)
            finally:
                os.unlink(hash_file)
            try:
                await broker.start()
            except Exception as e:  # port taken between free_port() and bind: try another
                last = e
                continue
            self._broker, self.port = broker, port
            self.url = f"mqtt://{LOOPBACK}:{port}"
            if self.core_id is not None:
                try:
                    self._write_credentials()
                except OSError as e:
                    await self.stop()
                    raise UserError(f"embedded broker: cannot write its credentials ({e})") from None
            return self.url
        raise UserError(f"embedded broker: cannot listen on {LOOPBACK}:{self.port or 'a free port'} ({last})")

    def _write_credentials(self) -> None:
        for role in EMBEDDED_ROLES:
            path = embedded_credentials_path(self.core_id, role)
            write_private(path, "%s:%s\n" % self.login(role))
            self._written[path] = role

    async def stop(self) -> None:
        for path, role in self._written.items():  # unless a newer broker of this core id replaced it
            with contextlib.suppress(OSError):
                if path.read_text().strip().partition(":")[2] == self._passwords[role]:
                    path.unlink()
        self._written.clear()
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
    """mosquitto's acl_file for ROLE_TOPICS."""
    out = ["# looptool roles (written by `looptool broker config`)"]
    for role, (read, write) in ROLE_TOPICS.items():
        out.append(f"user {role}")
        out += [f"topic {'readwrite' if f in write else 'read'} {f}" for f in read]
        out += [f"topic write {f}" for f in write if f not in read]
        out.append("")
    return "\n".join(out)


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


def _kept_password(path: Path, role: str) -> str:
    """The password of an earlier run from DIR/credentials/<role>; UserError naming the file when
    it is not what this writer leaves there."""
    from core.bus import load_credentials

    user, password = load_credentials(path)
    if user != role:
        raise UserError(f"{path}:1: expected `{role}:password`, found user {user!r} "
                        "(fix or remove the file, or pass --rotate for new passwords)")
    return password


def _mosquitto_passwd_hashes(tool: str, passwords: dict[str, str]) -> str:
    """The passwd file text, hashed by mosquitto_passwd itself. The passwords reach it in a 0600
    plain-text file that `-U` hashes in place (`-b` would put them on its argv, for `ps` to show)."""
    with tempfile.TemporaryDirectory(prefix="looptool-passwd-") as tmp:  # 0700
        plain = Path(tmp) / "passwd"
        write_private(plain, "".join(f"{role}:{pw}\n" for role, pw in passwords.items()))
        r = subprocess.run([tool, "-U", str(plain)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise UserError(f"mosquitto_passwd -U failed: {r.stderr.strip() or r.stdout.strip()}")
        text = plain.read_text()
    for role in passwords:
        if not any(line.startswith(f"{role}:$") for line in text.splitlines()):
            raise UserError(f"mosquitto_passwd -U left no hash for {role}")
    return text


def write_mosquitto_config(directory: str | os.PathLike, *, port: int = 1883, persistence: bool = False,
                           passwords: dict[str, str] | None = None, rotate: bool = False,
                           root_user: bool = False, use_mosquitto_passwd: bool = True) -> dict:
    """Write the config, password file, ACL and per-role credentials; returns their paths and, in
    `password_source`, each role's "given" | "kept" (from an earlier run) | "new". `passwords` maps
    a role to a given password; the others are kept, or generated when there is none or `rotate`."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port {port}: not a TCP port")
    given = passwords or {}
    for role in given:
        if role not in ROLES:
            raise UserError(f"unknown broker role {role!r}; roles are {', '.join(ROLES)}")
    d = Path(directory).resolve()
    passwd, acl, conf = d / "passwd", d / "acl", d / "mosquitto.conf"
    creds = {role: d / "credentials" / role for role in ROLES}
    pw, source = {}, {}
    for role in ROLES:
        if role in given:
            pw[role], source[role] = given[role], "given"
        elif not rotate and creds[role].exists():
            pw[role], source[role] = _kept_password(creds[role], role), "kept"
        else:
            pw[role], source[role] = secrets.token_urlsafe(24), "new"

    tool = shutil.which("mosquitto_passwd") if use_mosquitto_passwd else None
    hashed = (_mosquitto_passwd_hashes(tool, pw) if tool
              else "".join(f"{role}:{mosquitto_hash(pw[role])}\n" for role in ROLES))
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
        lines += ["persistence true", f"persistence_location {d / 'data'}/"]
    else:
        lines.append("persistence false")
    if root_user:
        lines += ["# throw-away CI only: the broker keeps root rights", "user root"]

    # everything is computed: now the files, each written whole; DIR keeps the mode it has
    d.mkdir(parents=True, exist_ok=True)
    (d / "credentials").mkdir(mode=0o700, exist_ok=True)
    os.chmod(d / "credentials", 0o700)  # only ever tightened: it holds the plain passwords
    write_private(passwd, hashed)
    write_private(acl, acl_text())
    for role in ROLES:
        write_private(creds[role], f"{role}:{pw[role]}\n")
    if persistence:
        (d / "data").mkdir(exist_ok=True)
    write_private(conf, "\n".join(lines) + "\n", mode=0o644)
    owner_note = None
    if not root_user and os.geteuid() == 0:
        owner_note = _hand_to_mosquitto_user(d, [passwd, acl], persistence)
    return {"config": conf, "passwd": passwd, "acl": acl, "credentials": creds, "port": port,
            "hashed_with": "mosquitto_passwd" if tool else "hashlib", "password_source": source,
            "owner_note": owner_note}


def _hand_to_mosquitto_user(d: Path, files: list[Path], persistence: bool) -> str:
    """As root, mosquitto drops to user `mosquitto`: give it the password and ACL files. DIR's mode
    is the operator's: when that user cannot traverse it, the note says how to let it."""
    try:
        ent = pwd.getpwnam("mosquitto")
    except KeyError:
        return ("no 'mosquitto' user here: run mosquitto as the user that owns these files, or add "
                "`user root` (--root-user) for a throw-away CI broker")
    for f in files:
        os.chown(f, ent.pw_uid, ent.pw_gid)
    if persistence:
        os.chown(d / "data", ent.pw_uid, ent.pw_gid)
    note = "password and ACL files chowned to user mosquitto (mosquitto drops to it when started as root)"
    st = d.stat()
    if not (st.st_mode & stat.S_IXOTH or (st.st_gid == ent.pw_gid and st.st_mode & stat.S_IXGRP)):
        note += (f"; {d} (mode {stat.S_IMODE(st.st_mode):o}) does not let it reach them: left as it is, "
                 f"grant it with `chgrp mosquitto {d} && chmod g+x {d}`")
    return note

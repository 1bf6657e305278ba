"""A throwaway PostgreSQL server, for the tests and for `pgstreams demo`/`bench` without a DSN.

It is started from the PostgreSQL binaries on the machine (``initdb``, ``pg_ctl``, ``postgres``)
in a private temporary directory, on a free port of 127.0.0.1, with its Unix socket in that
directory, so it never clashes with a system server. Tests use it to restart or reconfigure a
server (TLS, restart in the middle of ingestion), which they must not do to a shared one.

Stdlib only at import time: the CLI imports this before it knows whether it needs a server.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ThrowawayCluster", "find_postgres_bindir"]

log = logging.getLogger("pgstreams")

_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
HOST = "127.0.0.1"
SUPERUSER = "postgres"

# Realistic commit semantics (synchronous_commit stays on); only crash safety against an OS
# crash is given up, which a throwaway server never needs.
_DEFAULT_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
# Set by the cluster itself: the DSN and the no-clash guarantee depend on them.
_RESERVED_SETTINGS = frozenset({"port", "listen_addresses", "unix_socket_directories"})
_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
# Server messages that mean "someone took the port between our probe and the bind".
_PORT_TAKEN = re.compile(r"could not bind|Address already in use|could not create any TCP/IP")
_CONF_NAME = "pgstreams.conf"
_START_TIMEOUT_S = 60


def _has_server_binaries(bindir: Path) -> bool:
    return all(
        (bindir / name).is_file() and os.access(bindir / name, os.X_OK) for name in _SERVER_BINARIES
    )


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: numeric, so 16 sorts above 9.6.
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def find_postgres_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None when there is none.

    Looks at ``PG_BINDIR``, then ``pg_config --bindir``, then ``/usr/lib/postgresql/*/bin``
    (highest version first), then PATH.
    """
    env_dir = os.environ.get("PG_BINDIR")
    if env_dir:
        candidate = Path(env_dir).expanduser()
        if _has_server_binaries(candidate):
            return candidate
        log.warning("PG_BINDIR=%s holds no initdb/pg_ctl/postgres; looking elsewhere", env_dir)

    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            result = subprocess.run(
                [pg_config, "--bindir"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            result = None
        if result is not None and result.returncode == 0 and result.stdout.strip():
            candidate = Path(result.stdout.strip())
            if _has_server_binaries(candidate):
                return candidate

    debian_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for candidate in debian_dirs:
        if _has_server_binaries(candidate):
            return candidate

    # PATH often holds symlinks (e.g. /usr/local/bin/pg_ctl) without `postgres` next to them,
    # so also try the directory the symlink points into.
    for name in _SERVER_BINARIES:
        found = shutil.which(name)
        if found:
            for candidate in (Path(found).parent, Path(found).resolve().parent):
                if _has_server_binaries(candidate):
                    return candidate
    return None


@dataclass(frozen=True)
class _User:
    """The unprivileged account the server runs as when we are root."""

    name: str
    uid: int
    gid: int


def _server_user() -> _User | None:
    """None when we may run the server ourselves; initdb and postgres refuse to run as root."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd  # POSIX only, hence not at module level

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _User(name, entry.pw_uid, entry.pw_gid)
    raise RuntimeError(
        "running as root, and neither a 'postgres' nor a 'nobody' user exists to run "
        "PostgreSQL as (initdb and postgres refuse to run as root)"
    )


def _as_user(argv: Sequence[str], user: _User | None) -> list[str]:
    if user is None:
        return list(argv)
    # root's PATH sometimes lacks the sbin directories.
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
    runuser = shutil.which("runuser", path=search)
    if runuser:
        return [runuser, "-u", user.name, "--", *argv]
    su = shutil.which("su", path=search)
    if su:
        # -s: the 'nobody' account's login shell is usually nologin.
        return [su, user.name, "-s", "/bin/sh", "-c", shlex.join(argv)]
    raise RuntimeError(
        f"running as root, but neither runuser nor su exists to run PostgreSQL as {user.name!r}"
    )


def _child_env() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGOPTIONS, ...) of the caller must not steer our server,
    # and LC_ALL=C keeps the server's messages in English, which start() reads.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _temp_parent(user: _User | None) -> str | None:
    """Where the temp dir goes; None means tempfile's default.

    /tmp keeps the socket path well inside the ~107-byte limit of a Unix socket address, and
    when we hand the server to another user, every parent directory must be traversable by it.
    """
    tmp = Path("/tmp")
    try:
        mode = tmp.stat().st_mode
    except OSError:
        return None
    if tmp.is_dir() and os.access(tmp, os.W_OK | os.X_OK) and (user is None or mode & 0o001):
        return str(tmp)
    return None


def _conf_line(name: str, value: str) -> str:
    if not _SETTING_NAME.fullmatch(name):
        raise ValueError(f"not a PostgreSQL setting name: {name!r}")
    if any(char in value for char in "\r\n\0"):
        raise ValueError(f"setting {name!r}: value must be a single line")
    # Quoted values are accepted for every setting type; backslash escapes apply inside quotes.
    escaped = value.replace("\\", "\\\\").replace("'", "''")
    return f"{name} = '{escaped}'\n"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass(frozen=True)
class _TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    other_ca_cert: Path


def _make_tls(directory: Path) -> _TlsFiles:
    """A CA, a server certificate for localhost/127.0.0.1 signed by it, and an unrelated CA."""
    directory.mkdir(mode=0o755)
    files = _TlsFiles(
        ca_cert=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        other_ca_cert=directory / "other-ca.crt",
    )
    openssl = shutil.which("openssl")
    if openssl:
        _tls_with_openssl(openssl, directory, files)
    else:
        try:
            import cryptography  # noqa: F401  (only probing whether the fallback can work)
        except ImportError:
            raise RuntimeError(
                "a TLS cluster needs the `openssl` command or the `cryptography` package; "
                "neither is available"
            ) from None
        _tls_with_cryptography(directory, files)
    for key in directory.glob("*.key"):
        key.chmod(0o600)  # postgres refuses a server key readable by others
    return files


def _serial() -> str:
    return str(secrets.randbits(63) | (1 << 62))  # positive, unique enough, fits 8 bytes


def _tls_with_openssl(openssl: str, directory: Path, files: _TlsFiles) -> None:
    def run(*args: str) -> None:
        result = subprocess.run(
            [openssl, *args],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {_tail(result.stderr or result.stdout)}")

    # Our own config file: the system one may add conflicting extensions or be missing.
    ca_conf = directory / "ca.cnf"
    ca_conf.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = pgstreams throwaway CA\n"
        "[v3_ca]\nbasicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n"
    )
    server_conf = directory / "server.cnf"
    server_conf.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n"
        "[v3_server]\nbasicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n"
        "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
    )

    # EC P-256: a key takes milliseconds where RSA-2048 takes most of a second; `ecparam` is
    # understood by OpenSSL and LibreSSL alike.
    def new_key(path: Path) -> None:
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))

    def new_ca(stem: str) -> None:
        new_key(directory / f"{stem}.key")
        run(
            "req", "-x509", "-new", "-sha256", "-days", "30", "-set_serial", _serial(),
            "-config", str(ca_conf), "-extensions", "v3_ca",
            "-key", f"{stem}.key", "-out", f"{stem}.crt",
        )  # fmt: skip

    new_ca("ca")
    new_ca("other-ca")
    new_key(files.server_key)
    run("req", "-new", "-sha256", "-config", str(server_conf),
        "-key", "server.key", "-out", "server.csr")  # fmt: skip
    run(
        "x509", "-req", "-sha256", "-days", "30", "-set_serial", _serial(),
        "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-extfile", str(server_conf), "-extensions", "v3_server", "-out", "server.crt",
    )  # fmt: skip
    for scratch in (ca_conf, server_conf, directory / "server.csr"):
        scratch.unlink()


def _tls_with_cryptography(directory: Path, files: _TlsFiles) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(hours=1)  # tolerate a little clock skew
    not_after = now + datetime.timedelta(days=30)

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)

    def new_ca(stem: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pgstreams throwaway CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(int(_serial()))
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        write_key(key, directory / f"{stem}.key")
        (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    ca_cert, ca_key = new_ca("ca")
    new_ca("other-ca")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(int(_serial()))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_key(server_key, files.server_key)
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))


class ThrowawayCluster:
    """A private PostgreSQL server in a temporary directory; ``stop()`` deletes every trace.

    ``start()`` runs initdb (once) and starts the server; ``restart()``/``kill()`` keep the port
    and the data, so clients can be tested reconnecting. Usable as a context manager.
    """

    def __init__(
        self,
        *,
        tls: bool = False,
        settings: Mapping[str, str] | None = None,
        bindir: str | os.PathLike[str] | None = None,
        extra_listen_addresses: Sequence[str] = (),
    ) -> None:
        self._tls = tls
        # More loopback addresses (127.0.0.2, ...) reach the same server under a name the
        # TLS certificate does not carry, to test verify-ca against verify-full.
        self._extra_listen = [a for a in extra_listen_addresses if a.startswith("127.")]
        self._settings = dict(settings or {})
        reserved = _RESERVED_SETTINGS.intersection(self._settings)
        if reserved:
            raise ValueError(f"settings {sorted(reserved)} are chosen by ThrowawayCluster itself")
        for name, value in self._settings.items():
            _conf_line(name, value)  # fail here, not at start(), on a bad name or value
        self._bindir_arg = Path(bindir) if bindir is not None else None
        self._bindir: Path | None = None
        self._user: _User | None = None
        self._tmp: Path | None = None
        self._port: int | None = None
        self._tls_files: _TlsFiles | None = None
        self._running = False
        # kill() may come from another thread than the one ingesting, e.g. in fault tests.
        self._lock = threading.RLock()
        self._owner_pid = os.getpid()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Create the cluster if needed and start the server; a no-op when it is running."""
        with self._lock:
            if self._running:
                return self
            fresh = self._tmp is None
            try:
                if fresh:
                    self._create()
                self._start_server(may_change_port=fresh)
            except BaseException:
                if fresh:
                    self.stop()  # leave nothing behind from a cluster nobody can use
                raise
            return self

    def stop(self) -> None:
        """Shut the server down and delete its directory. Idempotent."""
        with self._lock:
            tmp = self._tmp
            if tmp is None:
                return
            try:
                if self._running or (tmp / "data" / "postmaster.pid").exists():
                    self._shutdown("fast")
            finally:
                self._running = False
                self._tmp = None
                self._port = None
                self._tls_files = None
                shutil.rmtree(tmp, ignore_errors=True)
                _LIVE.discard(self)
                log.info("throwaway PostgreSQL stopped and %s removed", tmp)

    def restart(self) -> None:
        """Stop fast and start again on the same port and data directory."""
        with self._lock:
            if self._tmp is None:
                raise RuntimeError("restart() needs a started cluster")
            if self._running:
                self._shutdown("fast")
            self._start_server(may_change_port=False)

    def kill(self) -> None:
        """Immediate shutdown, as in a crash: no checkpoint, clients see their connections drop.

        The data directory stays; ``start()`` or ``restart()`` brings the server back after
        crash recovery, on the same port.
        """
        with self._lock:
            if self._tmp is None:
                raise RuntimeError("kill() needs a started cluster")
            if self._running:
                self._shutdown("immediate")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else ("stopped" if self._tmp is None else "down")
        where = f" port={self._port} dir={self._tmp}" if self._tmp is not None else ""
        return f"<ThrowawayCluster {state}{where} tls={self._tls}>"

    # -- properties --------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the cluster is not started")
        return self._port

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def tls(self) -> bool:
        return self._tls

    @property
    def data_dir(self) -> Path:
        return self._dir() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._dir()

    @property
    def log_path(self) -> Path:
        return self._dir() / "server.log"

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            raise RuntimeError("the cluster is not started")
        return self._bindir

    @property
    def ca_cert_path(self) -> Path:
        """PEM of the CA that signed the server certificate."""
        return self._tls_paths().ca_cert

    @property
    def server_cert_path(self) -> Path:
        return self._tls_paths().server_cert

    @property
    def other_ca_cert_path(self) -> Path:
        """PEM of an unrelated CA, for proving that verification rejects the wrong CA."""
        return self._tls_paths().other_ca_cert

    # -- internals ---------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("the cluster is not started")
        return self._tmp

    def _tls_paths(self) -> _TlsFiles:
        if not self._tls:
            raise RuntimeError("this cluster was created with tls=False")
        if self._tls_files is None:
            raise RuntimeError("the cluster is not started")
        return self._tls_files

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.uid, self._user.gid)

    def _run(
        self, argv: Sequence[str], *, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = _as_user(argv, self._user)
        log.debug("running %s", shlex.join(cmd))
        # stdin from /dev/null and the server's output in its log file: the postmaster that
        # pg_ctl leaves behind holds none of our pipes, so this returns when pg_ctl does.
        return subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=_child_env(),
            cwd=self._tmp,  # the server's user may not be able to enter our cwd
            timeout=timeout,
            check=False,
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args],
            timeout=_START_TIMEOUT_S + 30,
        )

    def _create(self) -> None:
        bindir = self._bindir_arg or find_postgres_bindir()
        if bindir is None or not _has_server_binaries(bindir):
            raise RuntimeError(
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found"
                + (f" in {bindir}" if bindir else "; install PostgreSQL or set PG_BINDIR")
            )
        self._bindir = bindir
        self._user = _server_user()
        self._tmp = Path(tempfile.mkdtemp(prefix="pgstreams-", dir=_temp_parent(self._user)))
        _LIVE.add(self)  # from now on, atexit cleans up whatever happens
        self._chown(self._tmp)

        initdb = str(bindir / "initdb")
        argv = [
            initdb,
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
        ]
        argv += ["--locale=C", "--no-sync"]  # C: no dependency on the machine's locales
        if "--no-instructions" in self._run([initdb, "--help"]).stdout:
            argv.append("--no-instructions")
        result = self._run(argv)
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {result.returncode}):\n{_tail(result.stderr + result.stdout)}"
            )

        if self._tls:
            tls_dir = self._tmp / "tls"
            self._tls_files = _make_tls(tls_dir)
            for path in (tls_dir, *tls_dir.iterdir()):
                self._chown(path)  # the server must own its key

        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as out:
            out.write(f"\n# Added by pgstreams.cluster.\ninclude '{_CONF_NAME}'\n")
        self._port = _free_port()

    def _write_settings(self) -> None:
        settings = dict(_DEFAULT_SETTINGS)
        if self._tls_files is not None:
            settings["ssl"] = "on"
            settings["ssl_cert_file"] = str(self._tls_files.server_cert)
            settings["ssl_key_file"] = str(self._tls_files.server_key)
        settings.update(self._settings)
        settings["listen_addresses"] = ",".join([HOST, *self._extra_listen])
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = str(self.socket_dir)
        path = self.data_dir / _CONF_NAME
        path.write_text("".join(_conf_line(name, value) for name, value in settings.items()))
        self._chown(path)

    def _start_server(self, *, may_change_port: bool) -> None:
        for attempt in (1, 2):
            self._write_settings()
            try:
                log_offset = self.log_path.stat().st_size
            except FileNotFoundError:
                log_offset = 0
            result = self._pg_ctl(
                "-w", "-t", str(_START_TIMEOUT_S), "-l", str(self.log_path), "start"
            )
            if result.returncode == 0:
                self._running = True
                log.info(
                    "throwaway PostgreSQL running at %s (data in %s)",
                    self.dsn,
                    self.data_dir,
                )
                return
            server_log = self._read_log(log_offset)
            # pg_ctl may have given up waiting while the postmaster lives on.
            if (self.data_dir / "postmaster.pid").exists():
                self._shutdown("immediate")
            if attempt == 1 and may_change_port and _PORT_TAKEN.search(server_log):
                old_port, self._port = self._port, _free_port()
                log.warning("port %s was taken meanwhile; retrying on %s", old_port, self._port)
                continue
            raise RuntimeError(
                f"PostgreSQL failed to start (pg_ctl exit {result.returncode}): "
                f"{_tail(result.stderr + result.stdout, 5)}\n"
                f"--- end of the server log ---\n{_tail(server_log)}"
            )

    def _read_log(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as server_log:
                server_log.seek(offset)
                return server_log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _shutdown(self, mode: str) -> None:
        """``pg_ctl stop -m MODE``; escalates to immediate, then SIGKILL, so stop() never hangs."""
        modes = [mode] if mode == "immediate" else [mode, "immediate"]
        try:
            for current in modes:
                try:
                    result = self._pg_ctl("-w", "-t", str(_START_TIMEOUT_S), "-m", current, "stop")
                except subprocess.TimeoutExpired:
                    log.warning("pg_ctl stop -m %s hung; escalating", current)
                    continue
                if result.returncode == 0 or not (self.data_dir / "postmaster.pid").exists():
                    return
                log.warning(
                    "pg_ctl stop -m %s failed: %s",
                    current,
                    _tail(result.stderr + result.stdout),
                )
            self._kill_postmaster()
        finally:
            self._running = False

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGKILL)
            log.warning("killed postmaster %d with SIGKILL", pid)
        except (OSError, ValueError) as error:
            log.warning("could not kill the postmaster: %s", error)


# Strong references: a cluster its owner forgot is still stopped at interpreter exit.
_LIVE: set[ThrowawayCluster] = set()


def _stop_all() -> None:
    for cluster in list(_LIVE):
        if cluster._owner_pid != os.getpid():
            continue  # a forked child exiting must not stop its parent's server
        try:
            cluster.stop()
        except Exception:
            log.exception("could not stop %r at exit", cluster)


atexit.register(_stop_all)

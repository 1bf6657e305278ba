"""ThrowawayCluster really starts PostgreSQL: checked from outside with the bindir's own psql."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pgstreams import cluster as pgc
else:
    try:
        from pgstreams import cluster as pgc
    except ImportError:
        # pgstreams/__init__.py may import the Rust extension, which may not be built yet;
        # cluster.py is stdlib-only, so load it on its own.
        _path = Path(__file__).resolve().parents[1] / "python" / "pgstreams" / "cluster.py"
        _spec = importlib.util.spec_from_file_location("pgstreams_cluster_standalone", _path)
        assert _spec is not None and _spec.loader is not None
        pgc = importlib.util.module_from_spec(_spec)
        sys.modules[_spec.name] = pgc  # dataclasses look their module up here
        _spec.loader.exec_module(pgc)

ThrowawayCluster = pgc.ThrowawayCluster

BINDIR = pgc.find_postgres_bindir()
needs_postgres = pytest.mark.skipif(
    BINDIR is None,
    reason="no PostgreSQL server binaries (initdb, pg_ctl, postgres) found via PG_BINDIR, "
    "pg_config --bindir, /usr/lib/postgresql/*/bin or PATH: ThrowawayCluster needs them",
)


def _psql_binary() -> str:
    if BINDIR is not None and (BINDIR / "psql").is_file():
        return str(BINDIR / "psql")
    found = shutil.which("psql")
    if found is None:
        pytest.skip(f"no psql next to the server binaries in {BINDIR} nor on PATH")
    return found


def run_psql(args: list[str], sql: str) -> subprocess.CompletedProcess[str]:
    # The caller's PG* variables must not redirect psql to another server.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return subprocess.run(
        [_psql_binary(), "-X", *args, "-Atc", sql],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def query(cluster: pgc.ThrowawayCluster, sql: str) -> str:
    result = run_psql(["-h", cluster.host, "-p", str(cluster.port), "-U", "postgres"], sql)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def tls_conninfo(cluster: pgc.ThrowawayCluster, rootcert: Path) -> str:
    # hostaddr: connect to 127.0.0.1 even where localhost resolves to ::1 first; verify-full
    # still checks the certificate against host=localhost.
    return (
        f"sslmode=verify-full sslrootcert={rootcert} host=localhost hostaddr=127.0.0.1 "
        f"port={cluster.port} user=postgres dbname=postgres"
    )


@pytest.fixture(scope="module")
def plain() -> Iterator[pgc.ThrowawayCluster]:
    with ThrowawayCluster(settings={"work_mem": "7MB"}) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def restartable() -> Iterator[pgc.ThrowawayCluster]:
    with ThrowawayCluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def tls() -> Iterator[pgc.ThrowawayCluster]:
    with ThrowawayCluster(tls=True) as cluster:
        yield cluster


# -- without a server ---------------------------------------------------------------------------


def test_pg_bindir_wins_when_it_holds_the_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("initdb", "pg_ctl", "postgres"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    assert pgc.find_postgres_bindir() == tmp_path


def test_pg_bindir_without_binaries_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    assert pgc.find_postgres_bindir() != tmp_path


def test_bad_settings_are_rejected_before_start() -> None:
    with pytest.raises(ValueError, match="port"):
        ThrowawayCluster(settings={"port": "5432"})
    with pytest.raises(ValueError, match="setting name"):
        ThrowawayCluster(settings={"work_mem = 1; x": "1"})
    with pytest.raises(ValueError, match="single line"):
        ThrowawayCluster(settings={"work_mem": "1MB\nfsync = on"})


def test_properties_need_a_started_cluster() -> None:
    cluster = ThrowawayCluster(tls=True)
    with pytest.raises(RuntimeError, match="not started"):
        _ = cluster.port
    with pytest.raises(RuntimeError, match="not started"):
        _ = cluster.ca_cert_path
    cluster.stop()  # stopping a never-started cluster is fine


def _handshake(ca: Path, cert: Path, key: Path, hostname: str) -> None:
    """A TLS handshake in memory, verifying like a strict client would."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(20):
        for i, side in enumerate((client, server)):
            if not done[i]:
                try:
                    side.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done):
            return
    raise AssertionError("TLS handshake did not finish")


@pytest.mark.parametrize("generator", ["openssl", "cryptography"])
def test_certificates_verify_for_localhost_and_not_with_the_other_ca(
    generator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    if generator == "openssl":
        if real_which("openssl") is None:
            pytest.skip("no openssl command")
    else:
        pytest.importorskip("cryptography")
        monkeypatch.setattr(
            shutil,
            "which",
            lambda name, *a, **k: None if name == "openssl" else real_which(name, *a, **k),
        )
    files = pgc._make_tls(tmp_path / "tls")
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    for hostname in ("localhost", "127.0.0.1"):
        _handshake(files.ca_cert, files.server_cert, files.server_key, hostname)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(files.other_ca_cert, files.server_cert, files.server_key, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(files.ca_cert, files.server_cert, files.server_key, "example.com")


def test_tls_without_openssl_or_cryptography_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **k: None if name == "openssl" else real_which(name, *a, **k),
    )
    monkeypatch.setitem(sys.modules, "cryptography", None)  # makes `import cryptography` fail
    with pytest.raises(RuntimeError, match=r"openssl.*cryptography"):
        pgc._make_tls(tmp_path / "tls")


# -- a shared running server ----------------------------------------------------------------------


@needs_postgres
def test_answers_on_its_port(plain: pgc.ThrowawayCluster) -> None:
    assert query(plain, "select 1") == "1"
    assert plain.host == "127.0.0.1"
    assert plain.dsn == f"postgresql://postgres@127.0.0.1:{plain.port}/postgres"
    assert plain.running


@needs_postgres
def test_settings(plain: pgc.ThrowawayCluster) -> None:
    shown = query(
        plain,
        "select string_agg(name || '=' || setting, ',' order by name) from pg_settings where name"
        " in ('fsync', 'full_page_writes', 'synchronous_commit', 'max_connections', 'work_mem',"
        " 'listen_addresses', 'unix_socket_directories', 'ssl', 'server_encoding')",
    )
    assert dict(item.split("=", 1) for item in shown.split(",")) == {
        "fsync": "off",
        "full_page_writes": "off",
        "synchronous_commit": "on",  # commit semantics stay realistic
        "max_connections": "200",
        "work_mem": "7168",  # the caller's settings apply (in kB)
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(plain.socket_dir),
        "ssl": "off",
        "server_encoding": "UTF8",
    }


@needs_postgres
def test_runs_unprivileged_and_without_tls_paths(plain: pgc.ThrowawayCluster) -> None:
    if os.geteuid() == 0:
        assert plain.data_dir.stat().st_uid != 0  # initdb and postgres refuse root
    with pytest.raises(RuntimeError, match="tls=False"):
        _ = plain.ca_cert_path


# -- restarting and killing -----------------------------------------------------------------------


@needs_postgres
def test_restart_keeps_data_and_port(restartable: pgc.ThrowawayCluster) -> None:
    port, data_dir = restartable.port, restartable.data_dir
    query(restartable, "create table kept (x int); insert into kept values (42)")
    restartable.restart()
    assert (restartable.port, restartable.data_dir) == (port, data_dir)
    assert query(restartable, "select x from kept") == "42"


@needs_postgres
def test_kill_is_a_crash_and_start_recovers_committed_data(
    restartable: pgc.ThrowawayCluster,
) -> None:
    port = restartable.port
    query(restartable, "create table survived (x int); insert into survived values (7)")
    restartable.kill()
    assert not restartable.running
    down = run_psql(["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"], "select 1")
    assert down.returncode != 0
    restartable.start()
    assert restartable.port == port
    assert query(restartable, "select x from survived") == "7"
    assert "not properly shut down" in restartable.log_path.read_text()  # crash recovery ran


@needs_postgres
def test_port_taken_meanwhile_is_retried_and_stop_removes_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real_free_port = pgc._free_port
    monkeypatch.setattr(pgc, "_free_port", lambda: next(ports, None) or real_free_port())
    try:
        with ThrowawayCluster() as cluster:
            assert cluster.port != taken
            assert query(cluster, "select 1") == "1"
            tmp = cluster.socket_dir
            assert cluster.data_dir.is_dir()
    finally:
        squatter.close()
    assert not tmp.exists()
    assert not cluster.running
    cluster.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        _ = cluster.port


@needs_postgres
def test_failed_start_raises_with_the_server_log_and_cleans_up() -> None:
    cluster = ThrowawayCluster(settings={"shared_buffers": "not-a-size"})
    with pytest.raises(RuntimeError, match="shared_buffers") as excinfo:
        cluster.start()
    assert "end of the server log" in str(excinfo.value)
    with pytest.raises(RuntimeError, match="not started"):
        _ = cluster.data_dir


# -- TLS ----------------------------------------------------------------------------------------


@needs_postgres
def test_tls_is_on(tls: pgc.ThrowawayCluster) -> None:
    assert query(tls, "show ssl") == "on"


@needs_postgres
def test_verify_full_with_the_right_ca_connects_encrypted(
    tls: pgc.ThrowawayCluster,
) -> None:
    result = run_psql(
        [tls_conninfo(tls, tls.ca_cert_path)],
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"


@needs_postgres
def test_verify_full_with_another_ca_is_refused(tls: pgc.ThrowawayCluster) -> None:
    result = run_psql([tls_conninfo(tls, tls.other_ca_cert_path)], "select 1")
    assert result.returncode != 0
    assert "certificate verify failed" in result.stderr


@needs_postgres
def test_server_key_is_private_to_the_server(tls: pgc.ThrowawayCluster) -> None:
    key = tls.server_cert_path.with_name("server.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.stat().st_uid == tls.data_dir.stat().st_uid

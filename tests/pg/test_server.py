"""Against throwaway servers: TLS in every mode users name, reconnecting after a restart,
and errors that keep their SQLSTATE but never show a password."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import pgstreams
from pgstreams import DatabaseError, Event
from pgstreams.cluster import ThrowawayCluster, find_postgres_bindir

pytestmark = pytest.mark.skipif(
    find_postgres_bindir() is None, reason="needs the PostgreSQL server binaries"
)


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[ThrowawayCluster]:
    with ThrowawayCluster(tls=True, extra_listen_addresses=["127.0.0.2"]) as cluster:
        yield cluster


async def ssl_in_use(store: pgstreams.PostgresEventStore) -> bool:
    rows = await store._core.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    return bool(rows[0][0])


async def test_npgsql_require_verifies_the_certificate(tls_cluster: ThrowawayCluster) -> None:
    dsn = (
        f"Host=localhost;Port={tls_cluster.port};Database=postgres;Username=postgres;"
        f"SSL Mode=Require;Trust Server Certificate=false;Root Certificate={tls_cluster.ca_cert_path}"
    )
    async with pgstreams.connect(dsn, schema_name="tls_a") as store:
        assert await ssl_in_use(store)


async def test_npgsql_require_refuses_a_server_signed_by_another_ca(
    tls_cluster: ThrowawayCluster,
) -> None:
    dsn = (
        f"Host=localhost;Port={tls_cluster.port};Database=postgres;Username=postgres;"
        f"SSL Mode=Require;Root Certificate={tls_cluster.other_ca_cert_path}"
    )
    with pytest.raises(DatabaseError, match=r"(?i)certificate|unknown ?issuer"):
        await pgstreams.connect(dsn, schema_name="tls_b", connect_timeout=5)


async def test_trust_server_certificate_encrypts_without_verifying(
    tls_cluster: ThrowawayCluster,
) -> None:
    dsn = (
        f"Host=localhost;Port={tls_cluster.port};Database=postgres;Username=postgres;"
        "SSL Mode=Require;Trust Server Certificate=true"
    )
    async with pgstreams.connect(dsn, schema_name="tls_c") as store:
        assert await ssl_in_use(store)


async def test_libpq_require_encrypts_only(tls_cluster: ThrowawayCluster) -> None:
    dsn = f"host=127.0.0.1 port={tls_cluster.port} user=postgres dbname=postgres sslmode=require"
    async with pgstreams.connect(dsn, schema_name="tls_d") as store:
        assert await ssl_in_use(store)


async def test_libpq_verify_ca_accepts_another_host_name(tls_cluster: ThrowawayCluster) -> None:
    # The certificate names localhost and 127.0.0.1; 127.0.0.2 reaches the same server.
    verify_ca = (
        f"postgresql://postgres@127.0.0.2:{tls_cluster.port}/postgres?"
        f"sslmode=verify-ca&sslrootcert={tls_cluster.ca_cert_path}"
    )
    async with pgstreams.connect(verify_ca, schema_name="tls_e") as store:
        assert await ssl_in_use(store)
    verify_full = verify_ca.replace("verify-ca", "verify-full")
    with pytest.raises(DatabaseError, match=r"(?i)certificate|name"):
        await pgstreams.connect(verify_full, schema_name="tls_e", connect_timeout=5)


async def test_libpq_verify_full_checks_the_host_name(tls_cluster: ThrowawayCluster) -> None:
    good = (
        f"postgresql://postgres@localhost:{tls_cluster.port}/postgres?"
        f"sslmode=verify-full&sslrootcert={tls_cluster.ca_cert_path}"
    )
    async with pgstreams.connect(good, schema_name="tls_f") as store:
        assert await ssl_in_use(store)
    wrong_ca = good.replace(str(tls_cluster.ca_cert_path), str(tls_cluster.other_ca_cert_path))
    with pytest.raises(DatabaseError):
        await pgstreams.connect(wrong_ca, schema_name="tls_f", connect_timeout=5)


async def test_store_recovers_after_a_server_restart() -> None:
    with ThrowawayCluster() as cluster:
        async with pgstreams.connect(cluster.dsn, schema_name="restart", max_pool_size=4) as store:
            await store.append_batch("s", [Event("E", {"i": i}) for i in range(10)])
            await asyncio.to_thread(cluster.restart)
            # The pool notices its dead connections and replaces them; a call that was
            # already on a dead connection may fail once, the next ones work.
            recovered = False
            for _ in range(20):
                try:
                    await store.append("s", Event("E", {"i": 10}))
                    recovered = True
                    break
                except DatabaseError:
                    await asyncio.sleep(0.1)
            assert recovered
            assert [e.offset async for e in store.read_stream("s")] == list(range(11))


async def test_server_errors_keep_their_sqlstate(pg_store: pgstreams.PostgresEventStore) -> None:
    with pytest.raises(DatabaseError) as raised:
        await pg_store._core.query("SELECT * FROM no_such_table")
    assert raised.value.sqlstate == "42P01"


async def test_wrong_password_error_never_shows_the_password(pg_dsn: str) -> None:
    with ThrowawayCluster(settings={"password_encryption": "scram-sha-256"}) as cluster:
        secret = "S3cr3t-Pa55-word"
        dsn = f"Host=127.0.0.1;Port={cluster.port};Username=nobody_here;Password={secret};Database=postgres"
        with pytest.raises(pgstreams.EventStreamingError) as raised:
            await pgstreams.connect(dsn, connect_timeout=5)
        assert secret not in str(raised.value)
        assert secret not in repr(raised.value)
        options = pgstreams.PostgresOptions(dsn)
        assert secret not in repr(options)
        assert secret not in options.describe()

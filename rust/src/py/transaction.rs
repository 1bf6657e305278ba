//! `Transaction`: one PostgreSQL transaction on a connection held from the pool, for
//! `pgstreams.transactions.Transaction` (which stages the store operations and calls
//! `commit` once with all of them; see `db::transaction`).
//!
//! The connection is taken out of the holder for each call and put back when the call ends.
//! A call cancelled (or panicking) half-way drops it inside the bridge's cancellation, which
//! closes it (`store::PooledConnection`), so the server rolls the transaction back and the
//! later calls of this transaction say it is over. A transaction dropped while still open
//! closes its connection too: a connection inside an open transaction never goes back to the
//! pool.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::db::generic;
use crate::db::queue::Receipt;
use crate::db::transaction::{self, Staged, StagedAppend, StagedCommit, StagedEnqueue};
use crate::errors::{CoreError, CoreResult};
use crate::py::batch::{EventBatch, Receipts};
use crate::py::rows::TupleRows;
use crate::py::{bridge, codec};
use crate::store::{PooledConnection, Store};

/// A staged commit as Python passes it: `(stream or None for the feed, group, offset or
/// position, check_expected, expected, (member, generation) or None)`.
type CommitArgs = (
    Option<String>,
    String,
    i64,
    bool,
    Option<i64>,
    Option<(String, i64)>,
);

/// The transaction's connection, and its `BEGIN` while not sent yet. The connection is taken
/// from the pool at the first statement (the caller's, or the flush at commit) and `BEGIN`
/// goes out in the same round trip, so a transaction costs no round trip of its own.
struct Held {
    connection: Option<PooledConnection>,
    begin: Option<String>,
    /// The connection was taken (after that, no connection means the transaction is over).
    taken: bool,
}

impl Held {
    /// The connection (taken from the pool on first use), out of the holder.
    async fn take(&mut self, store: &Store) -> CoreResult<PooledConnection> {
        if !self.taken {
            self.taken = true;
            return store.client().await;
        }
        self.connection.take().ok_or_else(over)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.discard();
        }
    }
}

/// `BEGIN` (if still to be sent) and then `work`, pipelined in one round trip. A `BEGIN` that
/// fails leaves the connection outside any transaction: it is not used again.
async fn after_begin<T>(
    connection: &PooledConnection,
    begin: Option<String>,
    work: impl std::future::Future<Output = CoreResult<T>>,
) -> (CoreResult<()>, CoreResult<T>) {
    let begun = async {
        transaction::send_begin(connection, begin.as_deref())
            .await
            .map_err(CoreError::from)
    };
    tokio::join!(begun, work)
}

#[pyclass(frozen, module = "pgstreams._core")]
pub struct Transaction {
    inner: Inner,
}

/// A transaction of `store` (its connection and `BEGIN` come with its first statement).
pub fn begin(store: Arc<Store>, idle_limit_ms: Option<u64>) -> Transaction {
    Transaction {
        inner: Inner::new(store, idle_limit_ms),
    }
}

fn over() -> CoreError {
    CoreError::Configuration(
        "this transaction is over (committed, rolled back, or broken by a cancelled call): \
         nothing more can run in it"
            .into(),
    )
}

/// Runs the caller's statement `sql` (prepared first, then sent behind `BEGIN` if that is
/// still due) with the transaction's connection, which goes back to the holder only if the
/// call ran to its end (a cancelled call drops it: see the top).
async fn run_statement<T>(
    store: &Store,
    held: &tokio::sync::Mutex<Held>,
    sql: &str,
    work: impl AsyncFnOnce(&PooledConnection, tokio_postgres::Statement) -> CoreResult<T>,
) -> CoreResult<T> {
    store.check_usable()?;
    let mut guard = held.lock().await;
    let connection = guard.take(store).await?;
    let statement = match connection.prepare_cached(sql).await {
        Ok(statement) => statement,
        Err(error) => {
            guard.connection = Some(connection);
            return Err(error.into());
        }
    };
    let begin = guard.begin.take();
    let (begun, result) = after_begin(&connection, begin, work(&connection, statement)).await;
    if let Err(error) = begun {
        connection.discard();
        return Err(error);
    }
    guard.connection = Some(connection);
    result
}

/// Ends whatever transaction the connection is in (ROLLBACK is harmless after a COMMIT that
/// failed) and returns it to the pool, or closes it if even that fails.
async fn end(connection: PooledConnection) {
    if connection.batch_execute("ROLLBACK").await.is_err() {
        connection.discard();
    }
}

#[pymethods]
impl Transaction {
    /// The caller's statement, at once; the number of rows it affected.
    #[pyo3(signature = (sql, params = None))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = codec::params(params)?;
        bridge::awaitable(py, self.inner.execute(sql, values))
    }

    /// The caller's query, at once; its rows as tuples.
    #[pyo3(signature = (sql, params = None))]
    fn fetch<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = codec::params(params)?;
        bridge::awaitable(py, self.inner.fetch(sql, values))
    }

    /// Flushes the staged operations and commits, in one round trip. Returns, in call order
    /// per kind: `[(offsets, positions)]` per append, new messages per enqueue, `bool` per
    /// offset or position commit, acknowledged messages per acknowledgement.
    fn commit<'py>(
        &self,
        py: Python<'py>,
        appends: Vec<(String, PyRef<'py, EventBatch>, Option<i64>)>,
        enqueues: Vec<(String, PyRef<'py, EventBatch>, f64)>,
        commits: Vec<CommitArgs>,
        acknowledgements: Vec<PyRef<'py, Receipts>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let staged = staged(appends, enqueues, commits, acknowledgements);
        bridge::awaitable(py, self.inner.commit(staged))
    }

    /// Rolls back; a transaction already over (or broken) is left as it is.
    fn rollback<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        bridge::awaitable(py, self.inner.rollback())
    }

    /// False once committed, rolled back or broken.
    fn is_open(&self) -> bool {
        self.inner
            .held
            .try_lock()
            .map(|guard| guard.connection.is_some())
            .unwrap_or(true)
    }
}

/// `BlockingCore.begin()`: the same transaction for a synchronous caller, each call blocking
/// its thread (not the GIL) until the result (`bridge::blocking`).
#[pyclass(frozen, module = "pgstreams._core")]
pub struct BlockingTransaction {
    inner: Inner,
}

/// A blocking transaction of `store`.
pub fn begin_blocking(store: Arc<Store>, idle_limit_ms: Option<u64>) -> BlockingTransaction {
    BlockingTransaction {
        inner: Inner::new(store, idle_limit_ms),
    }
}

#[pymethods]
impl BlockingTransaction {
    /// As `Transaction.execute`.
    #[pyo3(signature = (sql, params = None))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = codec::params(params)?;
        bridge::blocking(py, self.inner.execute(sql, values))
    }

    /// As `Transaction.commit`.
    fn commit<'py>(
        &self,
        py: Python<'py>,
        appends: Vec<(String, PyRef<'py, EventBatch>, Option<i64>)>,
        enqueues: Vec<(String, PyRef<'py, EventBatch>, f64)>,
        commits: Vec<CommitArgs>,
        acknowledgements: Vec<PyRef<'py, Receipts>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let staged = staged(appends, enqueues, commits, acknowledgements);
        bridge::blocking(py, self.inner.commit(staged))
    }

    /// As `Transaction.rollback`.
    fn rollback<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        bridge::blocking(py, self.inner.rollback())
    }
}

/// The staged operations as Python passes them to `commit`.
fn staged(
    appends: Vec<(String, PyRef<'_, EventBatch>, Option<i64>)>,
    enqueues: Vec<(String, PyRef<'_, EventBatch>, f64)>,
    commits: Vec<CommitArgs>,
    acknowledgements: Vec<PyRef<'_, Receipts>>,
) -> Staged {
    Staged {
        appends: appends
            .into_iter()
            .map(|(stream, batch, expected_version)| StagedAppend {
                stream,
                columns: Arc::clone(&batch.columns),
                expected_version,
            })
            .collect(),
        enqueues: enqueues
            .into_iter()
            .map(|(stream, batch, delay_seconds)| StagedEnqueue {
                stream,
                columns: Arc::clone(&batch.columns),
                delay_seconds,
            })
            .collect(),
        commits: commits
            .into_iter()
            .map(
                |(stream, group, value, check_expected, expected, fence)| StagedCommit {
                    stream,
                    group,
                    value,
                    check_expected,
                    expected,
                    fence,
                },
            )
            .collect(),
        acknowledgements: acknowledgements
            .iter()
            .map(|r| r.items.clone())
            .collect::<Vec<Vec<Receipt>>>(),
    }
}

/// The result of a commit: per kind, in call order, what `Transaction.commit` returns.
type Committed = (Vec<(Vec<i64>, Vec<i64>)>, Vec<i64>, Vec<bool>, Vec<i64>);

/// What both kinds of transaction share: the store and the held connection.
struct Inner {
    store: Arc<Store>,
    held: Arc<tokio::sync::Mutex<Held>>,
}

impl Inner {
    fn new(store: Arc<Store>, idle_limit_ms: Option<u64>) -> Self {
        Inner {
            store,
            held: Arc::new(tokio::sync::Mutex::new(Held {
                connection: None,
                begin: Some(transaction::begin(idle_limit_ms)),
                taken: false,
            })),
        }
    }

    fn execute(
        &self,
        sql: String,
        values: Vec<generic::Value>,
    ) -> impl std::future::Future<Output = CoreResult<u64>> + Send + 'static {
        let (store, held) = (Arc::clone(&self.store), Arc::clone(&self.held));
        async move {
            run_statement(&store, &held, &sql, async |c, statement| {
                Ok(c.execute(&statement, &generic::as_params(&values)).await?)
            })
            .await
        }
    }

    fn fetch(
        &self,
        sql: String,
        values: Vec<generic::Value>,
    ) -> impl std::future::Future<Output = CoreResult<TupleRows>> + Send + 'static {
        let (store, held) = (Arc::clone(&self.store), Arc::clone(&self.held));
        async move {
            run_statement(&store, &held, &sql, async |c, statement| {
                let rows = c.query(&statement, &generic::as_params(&values)).await?;
                Ok(TupleRows(rows))
            })
            .await
        }
    }

    fn commit(
        &self,
        staged: Staged,
    ) -> impl std::future::Future<Output = CoreResult<Committed>> + Send + 'static {
        let (store, held) = (Arc::clone(&self.store), Arc::clone(&self.held));
        async move {
            store.check_usable()?;
            let mut guard = held.lock().await;
            if guard.begin.is_some() && staged.is_empty() {
                guard.taken = true; // over, and nothing ran: no connection needed
                guard.begin = None;
                drop(guard.connection.take());
                return Ok((Vec::new(), Vec::new(), Vec::new(), Vec::new()));
            }
            let connection = guard.take(&store).await?;
            let begin = guard.begin.take();
            drop(guard);
            let notify = store.config.listen_notify;
            let flushing = transaction::flush_and_commit(
                &connection,
                &store.sql,
                &staged,
                notify,
                begin.as_deref(),
            );
            let flushed = match flushing.await {
                Ok(flushed) => flushed,
                Err(error) => {
                    // Refused before COMMIT was sent (a repeated id): end it here.
                    end(connection).await;
                    return Err(error);
                }
            };
            let appends: Vec<(Vec<i64>, Vec<i64>)> = flushed
                .appends
                .into_iter()
                .map(|a| (a.offsets, a.positions))
                .collect();
            Ok((
                appends,
                flushed.enqueued,
                flushed.commits,
                flushed.acknowledged,
            ))
        }
    }

    fn rollback(&self) -> impl std::future::Future<Output = CoreResult<()>> + Send + 'static {
        let held = Arc::clone(&self.held);
        async move {
            let (taken, begin) = {
                let mut guard = held.lock().await;
                guard.taken = true;
                (guard.connection.take(), guard.begin.take())
            };
            match (taken, begin) {
                (Some(connection), Some(_)) => drop(connection), // never began: back to the pool
                (Some(connection), None) => end(connection).await,
                (None, _) => {}
            }
            Ok(())
        }
    }
}

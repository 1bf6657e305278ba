//! `Core`: one per `PostgresEventStore`. Each method converts its Python arguments under the
//! GIL, returns an awaitable whose I/O runs on the tokio runtime without the GIL, and builds
//! the Python results once at the end.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::config::{self, CoreConfig, RawCoreConfig};
use crate::db::append::EventColumns;
use crate::db::pgtypes::{JsonText, Micros};
use crate::db::{
    admin, append, configuration, connection, generic, groups, migrate, offsets, query, queue,
    queue_admin, read, recorder, retention, streams,
};
use crate::errors::{ConfigurationError, CoreError};
use crate::py::batch::{EventBatch, Receipts};
use crate::py::follow::FeedFollower;
use crate::py::rows::{DeadLetterRows, TupleRows};
use crate::py::types::uuid_from_object;
use crate::py::{bridge, codec, convert, transaction};
use crate::store::Store;
use crate::{queue_wait, runtime};

pyo3::import_exception!(pgstreams.paging, PartialBatch);

/// A read batch as fetched: rows not yet made into Python objects. The reads resolve to one
/// of these, so a tokio worker never builds thousands of objects under the GIL; the event
/// loop's thread does, in `events()`, while the next batch is already being read
/// (`paging.paginate` asks for it from `last_offset`/`last_position` first).
#[pyclass(frozen, module = "pgstreams._core")]
pub struct EventPage(read::Batch);

impl EventPage {
    /// Column `index` (an int8) of the last row, or of the row that stopped the batch.
    fn last(&self, index: usize, of_bad: impl Fn(&read::BadRow) -> i64) -> Option<i64> {
        match &self.0.bad {
            Some(bad) => Some(of_bad(bad)),
            None => self.0.rows.last().and_then(|row| row.try_get(index).ok()),
        }
    }
}

#[pymethods]
impl EventPage {
    /// The rows fetched, counting one that cannot be decoded.
    fn __len__(&self) -> usize {
        self.0.rows.len() + usize::from(self.0.bad.is_some())
    }

    /// The stream offset of the last row (None when there is none).
    #[getter]
    fn last_offset(&self) -> Option<i64> {
        self.last(1, |bad| bad.offset)
    }

    /// The global position of the last row (None when there is none).
    #[getter]
    fn last_position(&self) -> Option<i64> {
        self.last(2, |bad| bad.position)
    }

    /// The `StoredEvent`s; raises `PartialBatch(events before it, its UndecodableEventError)`
    /// at a row that cannot be decoded.
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        match convert::stored_events(py, &self.0.rows, self.0.bad.as_ref())? {
            (events, None) => Ok(events),
            (events, Some(error)) => Err(PartialBatch::new_err((events.unbind(), error))),
        }
    }
}

/// Rows of a dequeue -> `QueuedEvent`s. A message that cannot be decoded is left out and
/// dead-lettered (reason `undecodable`) in the background, with a warning naming it: no
/// consumer could handle it, and delivering it again would only burn its deliveries.
pub struct QueuedRows {
    rows: Vec<Row>,
    store: Arc<Store>,
}

impl<'py> IntoPyObject<'py> for QueuedRows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let (events, undecodable) = convert::queued_events(py, &self.rows)?;
        if !undecodable.is_empty() {
            for message in &undecodable {
                log::warn!(target: "pgstreams",
                    "pgstreams: message {} cannot be decoded and goes to the dead letters: {}",
                    message.receipt.id,
                    message.cause
                );
            }
            let ids: Vec<Uuid> = undecodable.iter().map(|m| m.receipt.id).collect();
            let store = self.store;
            runtime::runtime().spawn(async move {
                let marked = async {
                    let client = store.client().await?;
                    queue::dead_letter(&client, &store.sql.queue, &ids, "undecodable").await
                };
                if let Err(error) = marked.await {
                    log::warn!(target: "pgstreams", "pgstreams: could not dead-letter undecodable messages: {error}");
                }
            });
        }
        Ok(events)
    }
}

/// An event query's filter as Python gives it (`queries.EventQuery.to_core()`), already
/// checked there: times as microseconds since the Unix epoch, the containment document as
/// JSON bytes (made by the one codec).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct RawFilter {
    stream: Option<String>,
    stream_prefix: Option<String>,
    event_types: Option<Vec<String>>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    data_contains: Option<Vec<u8>>,
    from_offset: Option<i64>,
    until_position: Option<i64>,
    after_position: Option<i64>,
}

impl From<RawFilter> for query::EventFilter {
    fn from(raw: RawFilter) -> Self {
        query::EventFilter {
            stream: raw.stream,
            stream_prefix: raw.stream_prefix,
            event_types: raw.event_types,
            correlation_id: raw.correlation_id,
            causation_id: raw.causation_id,
            since: raw.since.map(Micros),
            until: raw.until.map(Micros),
            data_contains: raw.data_contains.map(JsonText),
            from_offset: raw.from_offset,
            until_position: raw.until_position,
            after_position: raw.after_position,
        }
    }
}

/// A list of `uuid.UUID`s (already checked by `batch::parse_event_ids`) -> owned ids.
fn uuids(values: &Bound<'_, PyAny>) -> PyResult<Vec<Uuid>> {
    values
        .try_iter()?
        .map(|value| uuid_from_object(&value?))
        .collect()
}

/// Releases, in the background, the leases of messages a dequeue took but nobody received:
/// they are ready again, in their place, and that delivery does not count.
fn release_in_background(store: &Arc<Store>, leased: &Bound<'_, PyAny>) -> PyResult<()> {
    let receipts = Receipts::from_values(leased)?.items;
    if receipts.is_empty() {
        return Ok(());
    }
    let store = Arc::clone(store);
    runtime::runtime().spawn(async move {
        let released = async {
            let client = store.client().await?;
            queue::release(&client, &store.sql.queue, &receipts).await
        };
        match released.await {
            Ok(count) => log::debug!(target: "pgstreams", "pgstreams: released {count} leases of a cancelled dequeue"),
            Err(error) => log::warn!(target: "pgstreams", 
                "pgstreams: could not release the leases of a cancelled dequeue ({error}); \
                 they come back when their visibility timeout ends"
            ),
        }
    });
    Ok(())
}

/// The `undo` of a dequeue (`bridge::awaitable_shielded`): the leased messages that reached
/// a caller who had cancelled meanwhile.
#[pyclass(frozen)]
struct ReleaseLeases(Arc<Store>);

#[pymethods]
impl ReleaseLeases {
    fn __call__(&self, leased: &Bound<'_, PyAny>) -> PyResult<()> {
        release_in_background(&self.0, leased)
    }
}

#[pyclass(frozen, module = "pgstreams._core")]
pub struct Core {
    store: Arc<Store>,
}

impl Core {
    fn spawn<'py, F, T>(
        &self,
        py: Python<'py>,
        work: impl FnOnce(Arc<Store>) -> F,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        F: std::future::Future<Output = Result<T, CoreError>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let future = work(Arc::clone(&self.store));
        bridge::awaitable(py, future)
    }
}

/// An append: small ones through group commit, larger ones by COPY. `strict`: an id stored
/// before is a `DuplicateEventError` even when the call looks like a retry of the one that
/// stored it (callers whose ids name a fact, like eventsourcing's versions).
async fn append_work(
    store: Arc<Store>,
    stream: String,
    columns: Arc<EventColumns>,
    expected_version: Option<i64>,
    strict: bool,
) -> Result<(Vec<i64>, Vec<i64>), CoreError> {
    store.check_usable()?;
    let appended = if columns.ids.len() < append::COPY_THRESHOLD {
        // Small appends share transactions with concurrent ones (`group_commit`).
        let group = &store.group_commit;
        group
            .append(&store, stream.clone(), columns, expected_version)
            .await?
    } else {
        let mut client = store.client().await?;
        let sql = &store.sql.append;
        append::append(&mut client, sql, &stream, &columns, expected_version).await?
    };
    let appended = appended.checked(&stream, strict)?;
    Ok((appended.offsets, appended.positions))
}

async fn read_stream_work(
    store: Arc<Store>,
    stream: String,
    start_offset: i64,
    limit: i64,
) -> Result<EventPage, CoreError> {
    let client = store.client().await?;
    let batch = read::read_stream(&client, &store.sql.read, &stream, start_offset, limit).await?;
    Ok(EventPage(batch))
}

async fn read_all_work(
    store: Arc<Store>,
    after_position: i64,
    limit: i64,
) -> Result<EventPage, CoreError> {
    let client = store.client().await?;
    let batch = read::read_all(&client, &store.sql.read, after_position, limit).await?;
    Ok(EventPage(batch))
}

async fn head_position_work(store: Arc<Store>) -> Result<i64, CoreError> {
    let client = store.client().await?;
    read::head_position(&client, &store.sql.read).await
}

async fn query_work(
    store: Arc<Store>,
    sql: String,
    values: Vec<generic::Value>,
) -> Result<TupleRows, CoreError> {
    let client = store.client().await?;
    let statement = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&statement, &generic::as_params(&values))
        .await?;
    Ok(TupleRows(rows))
}

/// A transaction's idle limit (seconds, checked) in milliseconds.
fn idle_limit_ms(idle_limit: Option<f64>) -> PyResult<Option<u64>> {
    Ok(idle_limit
        .map(|s| config::duration("timeout", s, false, config::MAX_STATEMENT_TIMEOUT_SECONDS))
        .transpose()?
        .map(|d| d.as_millis().max(1) as u64))
}

/// `Core.blocking()`: the store's calls the `eventsourcing` recorders make, for synchronous
/// callers (their application's threads). Each runs on the runtime like the
/// `Core` call of the same name and blocks its caller until the result (`bridge::blocking`),
/// so a call costs the round trip and two thread switches, not also a hop through the
/// thread of an asyncio loop and back.
#[pyclass(frozen, module = "pgstreams._core")]
pub struct BlockingCore {
    store: Arc<Store>,
}

#[pymethods]
impl BlockingCore {
    #[pyo3(signature = (stream, batch, expected_version = None, strict = false))]
    fn append<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        batch: &EventBatch,
        expected_version: Option<i64>,
        strict: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let work = append_work(
            Arc::clone(&self.store),
            stream,
            Arc::clone(&batch.columns),
            expected_version,
            strict,
        );
        bridge::blocking(py, work)
    }

    /// As `Core.begin`, for a transaction whose calls block.
    #[pyo3(signature = (idle_limit = None))]
    fn begin(&self, idle_limit: Option<f64>) -> PyResult<transaction::BlockingTransaction> {
        let idle_limit_ms = idle_limit_ms(idle_limit)?;
        self.store.check_usable()?;
        Ok(transaction::begin_blocking(
            Arc::clone(&self.store),
            idle_limit_ms,
        ))
    }

    /// An eventsourcing aggregate's events (`db::recorder`): `(version, type, state)` rows.
    #[pyo3(signature = (stream, gt, lte, limit, descending))]
    fn select_versions<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        gt: Option<i64>,
        lte: Option<i64>,
        limit: Option<i64>,
        descending: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = Arc::clone(&self.store);
        bridge::blocking(py, async move {
            let client = store.client().await?;
            let sql = &store.sql.recorder;
            let rows =
                recorder::select_versions(&client, sql, &stream, (gt, lte), limit, descending)
                    .await?;
            Ok(TupleRows(rows))
        })
    }

    /// A window of the feed for an eventsourcing notification log (`db::recorder`):
    /// `(position, originator id, type, state, version)` rows, the last four None for events
    /// of streams without `prefix`.
    #[pyo3(signature = (after, until, count, prefix, event_types, uuid_ids))]
    #[allow(clippy::too_many_arguments)]
    fn select_notifications<'py>(
        &self,
        py: Python<'py>,
        after: i64,
        until: i64,
        count: i64,
        prefix: String,
        event_types: Option<Vec<String>>,
        uuid_ids: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = Arc::clone(&self.store);
        bridge::blocking(py, async move {
            let client = store.client().await?;
            let window = recorder::FeedWindow {
                after,
                until,
                count,
                prefix: &prefix,
                topics: event_types.as_deref(),
                uuid_ids,
            };
            let rows =
                recorder::select_notifications(&client, &store.sql.recorder, &window).await?;
            Ok(TupleRows(rows))
        })
    }

    #[pyo3(signature = (sql, params = None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = codec::params(params)?;
        bridge::blocking(py, query_work(Arc::clone(&self.store), sql, values))
    }
}

#[pymethods]
impl Core {
    #[new]
    fn new(config: &Bound<'_, PyDict>) -> PyResult<Self> {
        let raw: RawCoreConfig = config.extract()?;
        let config = CoreConfig::from_raw(raw)?;
        let runtime = runtime::runtime();
        let _guard = runtime.enter();
        Ok(Core {
            store: Store::new(config)?,
        })
    }

    /// Opens `min_pool_size` connections (at least one): fails fast on a bad DSN.
    fn connect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move { store.warm_up().await })
    }

    /// `(server_version, database, user)` of the server the pool talks to.
    fn ping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let row = client.query_one(connection::SERVER_INFO, &[]).await?;
            Ok((
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2),
            ))
        })
    }

    fn close(&self) {
        self.store.close();
    }

    /// Releases the leases of `leased` (a dequeue's result) in the background: for a task
    /// cancelled after its dequeue's result arrived but before it resumed to take it.
    fn release(&self, leased: &Bound<'_, PyAny>) -> PyResult<()> {
        release_in_background(&self.store, leased)
    }

    /// How many streams the LISTEN task holds a waiter entry for (0 without LISTEN): what the
    /// tests check to prove the map does not grow with every stream ever waited on.
    fn _waited_streams(&self) -> usize {
        self.store
            .listener
            .as_ref()
            .map_or(0, |l| l.waited_streams())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.store.is_closed()
    }

    /// `{"size": ..., "available": ..., "waiting": ..., "max_size": ...}` of the pool.
    fn pool_status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let status = self.store.pool.status();
        let dict = PyDict::new(py);
        dict.set_item("size", status.size)?;
        dict.set_item("available", status.available)?;
        dict.set_item("waiting", status.waiting)?;
        dict.set_item("max_size", status.max_size)?;
        Ok(dict)
    }

    /// Runs a script of one or more statements (simple protocol, no parameters).
    fn execute<'py>(&self, py: Python<'py>, sql: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            store.client().await?.batch_execute(&sql).await?;
            Ok(())
        })
    }

    #[pyo3(signature = (sql, params = None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = codec::params(params)?;
        self.spawn(py, |store| query_work(store, sql, values))
    }

    /// A member's heartbeat (migration 006): the live members of its group, by id.
    fn consumer_heartbeat<'py>(
        &self,
        py: Python<'py>,
        selector: String,
        group: String,
        member: String,
        session_timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.groups;
            groups::heartbeat(&client, sql, &selector, &group, &member, session_timeout).await
        })
    }

    /// Takes or renews these units' leases: `[(unit, generation)]` of those now held.
    fn consumer_acquire<'py>(
        &self,
        py: Python<'py>,
        group: String,
        member: String,
        units: Vec<String>,
        ttl: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            groups::acquire(&client, &store.sql.groups, &group, &member, &units, ttl).await
        })
    }

    /// Gives up these units' leases (all, when None); how many there were.
    #[pyo3(signature = (group, member, units = None))]
    fn consumer_release<'py>(
        &self,
        py: Python<'py>,
        group: String,
        member: String,
        units: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.groups;
            groups::release(&client, sql, &group, &member, units.as_deref()).await
        })
    }

    fn consumer_leave<'py>(
        &self,
        py: Python<'py>,
        selector: String,
        group: String,
        member: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            groups::leave(&client, &store.sql.groups, &selector, &group, &member).await
        })
    }

    /// A member's fenced commit of a stream's offset (`stream` None: the feed's position).
    fn commit_as_member<'py>(
        &self,
        py: Python<'py>,
        stream: Option<String>,
        group: String,
        value: i64,
        member: String,
        generation: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.groups;
            let stream = stream.as_deref();
            groups::commit(&client, sql, stream, &group, value, &member, generation).await
        })
    }

    /// `[(group, member, last heartbeat, [units held])]` of every registered member.
    fn consumer_members<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let statement = client.prepare_cached(&store.sql.groups.members).await?;
            Ok(TupleRows(client.query(&statement, &[]).await?))
        })
    }

    /// Registers for the feed's notifications (`read_all(follow=True)`).
    fn follow_feed(&self) -> PyResult<FeedFollower> {
        self.store.check_usable()?;
        Ok(FeedFollower::new(&self.store))
    }

    /// Begins a transaction (`py::transaction`); `idle_limit` in seconds bounds how long it
    /// may sit idle between statements (the server ends it then).
    #[pyo3(signature = (idle_limit = None))]
    fn begin(&self, idle_limit: Option<f64>) -> PyResult<transaction::Transaction> {
        let idle_limit_ms = idle_limit_ms(idle_limit)?;
        self.store.check_usable()?;
        Ok(transaction::begin(Arc::clone(&self.store), idle_limit_ms))
    }

    #[pyo3(signature = (stream, batch, expected_version = None, strict = false))]
    fn append<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        batch: &EventBatch,
        expected_version: Option<i64>,
        strict: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let columns = Arc::clone(&batch.columns);
        self.spawn(py, |store| {
            append_work(store, stream, columns, expected_version, strict)
        })
    }

    fn read_stream<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        start_offset: i64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| {
            read_stream_work(store, stream, start_offset, limit)
        })
    }

    fn read_all<'py>(
        &self,
        py: Python<'py>,
        after_position: i64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| read_all_work(store, after_position, limit))
    }

    /// Like `read_stream`, from `start_offset` down, newest first.
    fn read_stream_backwards<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        start_offset: i64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.read;
            Ok(EventPage(
                read::read_stream_backwards(&client, sql, &stream, start_offset, limit).await?,
            ))
        })
    }

    /// Up to `limit` events after `after_position` matching `filter`, as `read_all` gives.
    fn find<'py>(
        &self,
        py: Python<'py>,
        filter: RawFilter,
        after_position: i64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let filter = query::EventFilter::from(filter);
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let schema = &store.sql.schema;
            Ok(EventPage(
                query::find(&client, schema, &filter, after_position, limit).await?,
            ))
        })
    }

    /// How many events match `filter`.
    fn count<'py>(&self, py: Python<'py>, filter: RawFilter) -> PyResult<Bound<'py, PyAny>> {
        let filter = query::EventFilter::from(filter);
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            query::count(&client, &store.sql.schema, &filter).await
        })
    }

    /// The statement `find` sends for `filter`: for the tests that `EXPLAIN` it.
    fn _find_sql(&self, filter: RawFilter) -> String {
        query::find_sql(&self.store.sql.schema, &query::EventFilter::from(filter))
    }

    fn stream_version<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            read::stream_version(&client, &store.sql.read, &stream).await
        })
    }

    fn head_position<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, head_position_work)
    }

    /// The same store's calls for synchronous callers in threads of their own: each blocks
    /// its thread (not the GIL) until its result, with no asyncio loop in between.
    fn blocking(&self) -> BlockingCore {
        BlockingCore {
            store: Arc::clone(&self.store),
        }
    }

    /// Enqueues a batch; returns how many were new (known ids are skipped).
    fn enqueue<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        batch: &EventBatch,
        delay: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let columns = Arc::clone(&batch.columns);
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let notify = store.listener.is_some();
            queue::enqueue(&client, &store.sql.queue, &stream, &columns, delay, notify).await
        })
    }

    /// Leases up to `max_count` messages, acknowledging `acks` in the same statement; with
    /// `wait`, waits up to that many seconds for a message. Shielded from cancellation: a
    /// statement sent always completes, and leases that reach a cancelled caller are released
    /// (`ReleaseLeases`), so cancelling never burns a delivery.
    #[pyo3(signature = (stream, consumer_id, max_count, visibility_timeout, wait = None, acks = None))]
    #[allow(clippy::too_many_arguments)]
    fn dequeue<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        consumer_id: String,
        max_count: i64,
        visibility_timeout: f64,
        wait: Option<f64>,
        acks: Option<&Receipts>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let visibility = config::duration(
            "visibility_timeout",
            visibility_timeout,
            false,
            config::MAX_DURATION_SECONDS,
        )?;
        let wait = config::duration(
            "wait",
            wait.unwrap_or(0.0),
            true,
            config::MAX_DURATION_SECONDS,
        )?;
        if max_count < 1 {
            return Err(ConfigurationError::new_err(format!(
                "max_count must be at least 1, got {max_count}"
            )));
        }
        let request = queue::DequeueRequest {
            stream,
            consumer_id,
            max_count,
            visibility_seconds: visibility.as_secs_f64(),
            acks: acks.map(|a| a.items.clone()).unwrap_or_default(),
        };
        let store = Arc::clone(&self.store);
        let undo = Py::new(py, ReleaseLeases(Arc::clone(&store)))?.into_any();
        bridge::awaitable_shielded(
            py,
            move |cancel| async move {
                let rows = queue_wait::dequeue_waiting(&store, request, wait, &cancel).await?;
                Ok(QueuedRows { rows, store })
            },
            undo,
        )
    }

    fn acknowledge<'py>(
        &self,
        py: Python<'py>,
        receipts: &Receipts,
    ) -> PyResult<Bound<'py, PyAny>> {
        let receipts = receipts.items.clone();
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue::acknowledge(&client, &store.sql.queue, &receipts).await
        })
    }

    /// `(acted, dropped)`: dropped is the stream of a message deleted because that stream's
    /// dead letters are disabled (the caller logs it), else None.
    #[pyo3(signature = (receipt, requeue, delay = None))]
    fn nack<'py>(
        &self,
        py: Python<'py>,
        receipt: &Receipts,
        requeue: bool,
        delay: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let receipt = receipt.single()?;
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue::nack(&client, &store.sql.queue, receipt, requeue, delay).await
        })
    }

    fn extend_lease<'py>(
        &self,
        py: Python<'py>,
        receipt: &Receipts,
        visibility_timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let receipt = receipt.single()?;
        let visibility = config::duration(
            "visibility_timeout",
            visibility_timeout,
            false,
            config::MAX_DURATION_SECONDS,
        )?
        .as_secs_f64();
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue::extend_lease(&client, &store.sql.queue, receipt, visibility).await
        })
    }

    /// `[(version, description, checksum)]` of the schema's applied migrations, read on a
    /// pooled connection: what `connect()` checks before doing anything else.
    fn applied_migrations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            migrate::applied(&client, &store.config.schema_name).await
        })
    }

    /// `[(stream, length, first, last, oldest, newest, version)]`, empty for a stream never
    /// written.
    fn stream_metadata<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                streams::metadata(&client, &store.sql.streams, &stream).await?,
            ))
        })
    }

    /// `(outcome, committed offset, stream's next offset)` of `commit_offset` (migration 001):
    /// outcome `committed`, `behind`, `past_end` or `conflict`. `force`: a reset, either way.
    #[pyo3(signature = (stream, group, offset, check_expected, expected, force))]
    #[allow(clippy::too_many_arguments)]
    fn commit_offset<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        group: String,
        offset: i64,
        check_expected: bool,
        expected: Option<i64>,
        force: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let expectation = offsets::Expectation {
            check: check_expected,
            expected,
        };
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.offsets;
            let done =
                offsets::commit(&client, sql, &stream, &group, offset, &expectation, force).await?;
            Ok((done.outcome, done.committed, done.bound))
        })
    }

    fn committed_offset<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        group: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            offsets::get(&client, &store.sql.offsets, &stream, &group).await
        })
    }

    fn delete_consumer_group<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        group: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            offsets::delete(&client, &store.sql.offsets, &stream, &group).await
        })
    }

    /// `(outcome, committed position, head)` of `commit_position` (migration 001).
    fn commit_position<'py>(
        &self,
        py: Python<'py>,
        group: String,
        position: i64,
        check_expected: bool,
        expected: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let expectation = offsets::Expectation {
            check: check_expected,
            expected,
        };
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.offsets;
            let done =
                offsets::commit_position(&client, sql, &group, position, &expectation).await?;
            Ok((done.outcome, done.committed, done.bound))
        })
    }

    fn committed_position<'py>(
        &self,
        py: Python<'py>,
        group: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            offsets::get_position(&client, &store.sql.offsets, &group).await
        })
    }

    fn delete_position_group<'py>(
        &self,
        py: Python<'py>,
        group: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            offsets::delete_position(&client, &store.sql.offsets, &group).await
        })
    }

    /// `[(stream or None, group, committed offset, committed position, lag, updated_at)]`.
    #[pyo3(signature = (stream = None))]
    fn consumer_groups<'py>(
        &self,
        py: Python<'py>,
        stream: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.offsets;
            Ok(TupleRows(
                offsets::groups(&client, sql, stream.as_deref()).await?,
            ))
        })
    }

    /// `[(visible, delayed, leased, dead, oldest age in seconds or None)]`, without writing.
    fn queue_stats<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                queue_admin::stats(&client, &store.sql.queue_admin, &stream).await?,
            ))
        })
    }

    fn dead_letters<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.queue_admin;
            Ok(DeadLetterRows(
                queue_admin::dead_letters(&client, sql, &stream, limit).await?,
            ))
        })
    }

    #[pyo3(signature = (stream, ids = None))]
    fn redrive<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        ids: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = ids.map(uuids).transpose()?;
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.queue_admin;
            queue_admin::redrive(&client, sql, &stream, ids.as_deref()).await
        })
    }

    #[pyo3(signature = (stream, ids = None))]
    fn delete_dead_letters<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        ids: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ids = ids.map(uuids).transpose()?;
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.queue_admin;
            queue_admin::delete_dead_letters(&client, sql, &stream, ids.as_deref()).await
        })
    }

    fn purge_queue<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue_admin::purge(&client, &store.sql.queue_admin, &stream).await
        })
    }

    // ---- operating the store: retention, configuration, administration, health

    #[pyo3(signature = (stream_name, max_age, max_event_count, enabled, respect_consumer_groups, max_dead_letter_age))]
    #[allow(clippy::too_many_arguments)]
    fn set_retention_policy<'py>(
        &self,
        py: Python<'py>,
        stream_name: String,
        max_age: Option<f64>,
        max_event_count: Option<i64>,
        enabled: bool,
        respect_consumer_groups: bool,
        max_dead_letter_age: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let policy = retention::Policy {
            stream_name,
            max_age,
            max_event_count,
            enabled,
            respect_consumer_groups,
            max_dead_letter_age,
        };
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            retention::set_policy(&client, &store.sql.retention, &policy).await
        })
    }

    /// `[(stream, max age, max count, enabled, respect groups, max dead letter age)]`.
    fn retention_policies<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                retention::policies(&client, &store.sql.retention).await?,
            ))
        })
    }

    fn delete_retention_policy<'py>(
        &self,
        py: Python<'py>,
        stream_name: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            retention::delete_policy(&client, &store.sql.retention, &stream_name).await
        })
    }

    /// `[(stream, rule, first offset, delete below, kept, waiting groups)]`.
    fn retention_plan<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                retention::plan(&client, &store.sql.retention).await?,
            ))
        })
    }

    fn trim_events<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        from_offset: i64,
        below_offset: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.retention;
            retention::trim_events(&client, sql, &stream, from_offset, below_offset).await
        })
    }

    /// `[(queue, max dead letter age in seconds)]`.
    fn dead_letter_retention_plan<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                retention::dead_letter_plan(&client, &store.sql.retention).await?,
            ))
        })
    }

    fn trim_dead_letters<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        max_age: f64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let sql = &store.sql.retention;
            retention::trim_dead_letters(&client, sql, &stream, max_age, limit).await
        })
    }

    /// Upserts the configuration of `stream` from its JSON `document` (bytes).
    fn set_stream_configuration<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        document: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let document = JsonText(document.to_vec());
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            configuration::set(&client, &store.sql.configuration, &stream, &document).await
        })
    }

    /// `[(stream, document)]`, empty without a configuration.
    fn stream_configuration<'py>(
        &self,
        py: Python<'py>,
        stream: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                configuration::get(&client, &store.sql.configuration, &stream).await?,
            ))
        })
    }

    fn stream_configurations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                configuration::list(&client, &store.sql.configuration).await?,
            ))
        })
    }

    fn delete_stream_configuration<'py>(
        &self,
        py: Python<'py>,
        stream: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            configuration::delete(&client, &store.sql.configuration, &stream).await
        })
    }

    /// `[(first offset or None, version)]` when marked deleted; empty if never written.
    fn mark_stream_deleted<'py>(
        &self,
        py: Python<'py>,
        stream: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                admin::mark_deleted(&client, &store.sql.admin, &stream).await?,
            ))
        })
    }

    /// `(first, last)` stored offset of the stream, or None.
    fn offset_range<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            admin::offset_range(&client, &store.sql.admin, &stream).await
        })
    }

    /// `[(stream, first offset, last offset, version, last write)]` in code point order.
    #[pyo3(signature = (prefix = None))]
    fn list_streams<'py>(
        &self,
        py: Python<'py>,
        prefix: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(
                admin::list_streams(&client, &store.sql.admin, prefix.as_deref()).await?,
            ))
        })
    }

    /// `[(now, streams, consumer groups, queues)]` (see `db::admin`), one round trip.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(TupleRows(admin::health(&client, &store.sql.admin).await?))
        })
    }
}

//! `Core`: one per `PostgresEventStore`. Each method converts its Python arguments under the
//! GIL, returns an awaitable whose I/O runs on the tokio runtime without the GIL, and builds
//! the Python results once at the end.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use tokio_postgres::Row;

use crate::config::{CoreConfig, RawCoreConfig};
use crate::db::{append, generic, queue, read};
use crate::errors::{ConfigurationError, CoreError};
use crate::py::{bridge, codec, convert};
use crate::runtime;
use crate::store::Store;

/// Rows of `events`, turned into `StoredEvent`s when handed back to Python.
pub struct EventRows(Vec<Row>);
/// Rows of a dequeue, turned into `QueuedEvent`s.
pub struct QueuedRows(Vec<Row>);
/// Rows of any statement, turned into tuples.
pub struct TupleRows(pub Vec<Row>);

impl<'py> IntoPyObject<'py> for EventRows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        convert::stored_events(py, &self.0)
    }
}

impl<'py> IntoPyObject<'py> for QueuedRows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        convert::queued_events(py, &self.0)
    }
}

impl<'py> IntoPyObject<'py> for TupleRows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;
    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        codec::rows_to_tuples(py, &self.0)
    }
}

fn positive_seconds(name: &str, value: f64) -> PyResult<f64> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(ConfigurationError::new_err(format!(
            "{name} must be a positive number of seconds, got {value}"
        )))
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

#[pymethods]
impl Core {
    #[new]
    fn new(config: &Bound<'_, PyDict>) -> PyResult<Self> {
        let raw: RawCoreConfig = config.extract()?;
        let config = CoreConfig::from_raw(raw)?;
        let _guard = runtime::runtime().enter();
        Ok(Core {
            store: Arc::new(Store::new(config)?),
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
            let row = client
                .query_one(
                    "SELECT current_setting('server_version'), current_database()::text, current_user::text",
                    &[],
                )
                .await?;
            Ok((row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, String>(2)))
        })
    }

    fn close(&self) {
        self.store.close();
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
        let values = match params {
            Some(p) => codec::params(p)?,
            None => Vec::new(),
        };
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let statement = client.prepare_cached(&sql).await?;
            let rows = client
                .query(&statement, &generic::as_params(&values))
                .await?;
            Ok(TupleRows(rows))
        })
    }

    #[pyo3(signature = (stream, events, expected_version = None))]
    fn append<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        events: &Bound<'py, PyAny>,
        expected_version: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let events = convert::new_events(events)?;
        self.spawn(py, |store| async move {
            let mut client = store.client().await?;
            append::append(&mut client, &store.sql, &stream, events, expected_version).await
        })
    }

    fn read_stream<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        start_offset: i64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(EventRows(
                read::read_stream(&client, &store.sql, &stream, start_offset, limit).await?,
            ))
        })
    }

    fn read_all<'py>(
        &self,
        py: Python<'py>,
        after_position: i64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            Ok(EventRows(
                read::read_all(&client, &store.sql, after_position, limit).await?,
            ))
        })
    }

    fn stream_version<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            read::stream_version(&client, &store.sql, &stream).await
        })
    }

    /// Enqueues a batch; returns how many were new (known ids are skipped).
    fn enqueue<'py>(
        &self,
        py: Python<'py>,
        stream: String,
        events: &Bound<'py, PyAny>,
        delay: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        // A repeated id is a no-op (ON CONFLICT DO NOTHING), as for an id already queued.
        let events = convert::new_events(events)?;
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            let notify = store.listener.is_some();
            queue::enqueue(&client, &store.sql, &stream, events, delay, notify).await
        })
    }

    /// Leases up to `max_count` messages, acknowledging `acks` in the same statement; with
    /// `wait`, waits up to that many seconds for a message.
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
        acks: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let visibility = positive_seconds("visibility_timeout", visibility_timeout)?;
        if max_count < 1 {
            return Err(ConfigurationError::new_err(format!(
                "max_count must be at least 1, got {max_count}"
            )));
        }
        let acks = match acks {
            Some(a) => convert::receipts(a)?,
            None => Vec::new(),
        };
        self.spawn(py, |store| async move {
            let outcome = match wait {
                Some(seconds) if seconds > 0.0 => {
                    queue::dequeue_waiting(
                        &store,
                        &stream,
                        &consumer_id,
                        max_count,
                        visibility,
                        &acks,
                        Duration::from_secs_f64(seconds),
                    )
                    .await?
                }
                _ => {
                    let client = store.client().await?;
                    queue::dequeue(
                        &client,
                        &store.sql,
                        &stream,
                        &consumer_id,
                        max_count,
                        visibility,
                        &acks,
                    )
                    .await?
                }
            };
            Ok(QueuedRows(outcome.rows))
        })
    }

    fn acknowledge<'py>(
        &self,
        py: Python<'py>,
        receipts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let receipts = convert::receipts(receipts)?;
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue::acknowledge(&client, &store.sql, &receipts).await
        })
    }

    #[pyo3(signature = (receipt, requeue, delay = None))]
    fn nack<'py>(
        &self,
        py: Python<'py>,
        receipt: &Bound<'py, PyAny>,
        requeue: bool,
        delay: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let receipt = convert::receipt(receipt)?;
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue::nack(&client, &store.sql, receipt, requeue, delay).await
        })
    }

    fn extend_lease<'py>(
        &self,
        py: Python<'py>,
        receipt: &Bound<'py, PyAny>,
        visibility_timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let receipt = convert::receipt(receipt)?;
        let visibility = positive_seconds("visibility_timeout", visibility_timeout)?;
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue::extend_lease(&client, &store.sql, receipt, visibility).await
        })
    }

    fn sweep_expired<'py>(&self, py: Python<'py>, stream: String) -> PyResult<Bound<'py, PyAny>> {
        self.spawn(py, |store| async move {
            let client = store.client().await?;
            queue::sweep_expired(&client, &store.sql, &stream).await
        })
    }
}

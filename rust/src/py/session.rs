//! `Session`: one dedicated connection outside the pool, for work that needs the same
//! connection across statements — the migrator's session advisory lock and its
//! transactions — and that must not be cut short by `command_timeout`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio_postgres::Client;

use crate::config;
use crate::config::{CoreConfig, RawCoreConfig};
use crate::db::connection::{self, connect_dedicated};
use crate::db::{generic, migrate};
use crate::errors::CoreError;
use crate::py::rows::TupleRows;
use crate::py::{bridge, codec};

#[pyclass(frozen, module = "pgstreams._core")]
pub struct Session {
    client: Arc<tokio::sync::Mutex<Option<Client>>>,
}

async fn with_client<T>(
    client: &tokio::sync::Mutex<Option<Client>>,
    work: impl AsyncFnOnce(&Client) -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    let guard = client.lock().await;
    match guard.as_ref() {
        Some(c) => work(c).await,
        None => Err(CoreError::Closed),
    }
}

#[pymethods]
impl Session {
    /// Opens a dedicated connection; `statement_timeout` in seconds, None for no limit.
    #[staticmethod]
    #[pyo3(signature = (config, statement_timeout = None))]
    fn open<'py>(
        py: Python<'py>,
        config: &Bound<'py, PyDict>,
        statement_timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let config = CoreConfig::from_raw(config.extract::<RawCoreConfig>()?)?;
        let timeout = statement_timeout
            .map(|s| {
                config::duration(
                    "statement_timeout",
                    s,
                    false,
                    config::MAX_STATEMENT_TIMEOUT_SECONDS,
                )
            })
            .transpose()?;
        bridge::awaitable(py, async move {
            let client = connect_dedicated(&config, timeout).await?;
            Ok(Session {
                client: Arc::new(tokio::sync::Mutex::new(Some(client))),
            })
        })
    }

    fn execute<'py>(&self, py: Python<'py>, sql: String) -> PyResult<Bound<'py, PyAny>> {
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            with_client(&client, async |c| Ok(c.batch_execute(&sql).await?)).await?;
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
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            let rows = with_client(&client, async |c| {
                Ok(c.query(sql.as_str(), &generic::as_params(&values)).await?)
            })
            .await?;
            Ok(TupleRows(rows))
        })
    }

    /// `(server_version, database, user)` of the server.
    fn ping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            with_client(&client, async |c| {
                let row = c.query_one(connection::SERVER_INFO, &[]).await?;
                Ok((
                    row.get::<_, String>(0),
                    row.get::<_, String>(1),
                    row.get::<_, String>(2),
                ))
            })
            .await
        })
    }

    /// `[(version, description, checksum)]` of the schema's applied migrations (reads only).
    fn applied_migrations<'py>(
        &self,
        py: Python<'py>,
        schema: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            with_client(&client, async |c| migrate::applied(c, &schema).await).await
        })
    }

    /// `(index exists, index valid, events has rows)`, or None without an events table.
    fn event_data_index_state<'py>(
        &self,
        py: Python<'py>,
        schema: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            with_client(&client, async |c| {
                migrate::event_data_index_state(c, &schema).await
            })
            .await
        })
    }

    /// Waits up to `wait` seconds for the advisory lock of migrators (`lock_class`, `key`).
    fn lock_migrations<'py>(
        &self,
        py: Python<'py>,
        lock_class: i32,
        key: i32,
        wait: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let wait = config::duration(
            "lock_wait",
            wait,
            false,
            config::MAX_STATEMENT_TIMEOUT_SECONDS,
        )?;
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            with_client(&client, async |c| {
                migrate::lock(c, lock_class, key, wait).await
            })
            .await
        })
    }

    /// Closes the connection (releasing any session advisory lock).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            client.lock().await.take();
            Ok(())
        })
    }
}

/// The schema and `schema_version` table, if missing: the migrator's first statement.
#[pyfunction]
pub fn migration_bootstrap_sql(schema: &str) -> PyResult<String> {
    config::validate_identifier(schema)?;
    Ok(migrate::bootstrap(schema))
}

/// The `schema_version` row of one migration.
#[pyfunction]
pub fn migration_record_sql(
    schema: &str,
    version: i64,
    description: &str,
    checksum: &str,
) -> PyResult<String> {
    config::validate_identifier(schema)?;
    Ok(migrate::record(schema, version, description, checksum))
}

/// Builds (`wanted`) or drops the GIN index on event data, `concurrently` on a live table.
#[pyfunction]
pub fn event_data_index_sql(schema: &str, wanted: bool, concurrently: bool) -> PyResult<String> {
    config::validate_identifier(schema)?;
    Ok(migrate::event_data_index(schema, wanted, concurrently))
}

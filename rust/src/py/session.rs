//! `Session`: one dedicated connection outside the pool, for work that needs the same
//! connection across statements — the migrator's session advisory lock and its
//! transactions — and that must not be cut short by `command_timeout`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio_postgres::Client;

use crate::config::{CoreConfig, RawCoreConfig};
use crate::db::connection::connect_dedicated;
use crate::db::generic;
use crate::errors::CoreError;
use crate::py::core::TupleRows;
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
        let timeout = statement_timeout.map(std::time::Duration::from_secs_f64);
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

    /// Closes the connection (releasing any session advisory lock).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = Arc::clone(&self.client);
        bridge::awaitable(py, async move {
            client.lock().await.take();
            Ok(())
        })
    }
}

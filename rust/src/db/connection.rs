//! Connections: the pool every store call borrows from, and dedicated connections for the
//! migrator (session advisory lock, no statement timeout) and the LISTEN task.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::CoreConfig;
use crate::errors::{CoreError, CoreResult};
use crate::tls;

/// `(server_version, database, user)`: what a ping reports.
pub const SERVER_INFO: &str =
    "SELECT current_setting('server_version'), current_database()::text, current_user::text";

/// A pool whose connections carry `command_timeout` as the server's `statement_timeout`.
/// `RecyclingMethod::Fast` checks that the connection task is still alive before handing a
/// connection out; a server restart ends that task, so dead connections are replaced
/// without the caller ever seeing them.
pub fn build_pool(config: &CoreConfig) -> CoreResult<Pool> {
    let driver_config = config.driver_config(config.command_timeout);
    let manager = Manager::from_config(
        driver_config,
        tls::connector(config)?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.max_pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(config.pool_timeout)
        .create_timeout(config.connect_timeout)
        .recycle_timeout(config.connect_timeout)
        .build()
        .map_err(|e| CoreError::Configuration(format!("cannot build the connection pool: {e}")))
}

pub type RawConnection = Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

/// Opens one connection outside the pool; the caller drives (or spawns) `connection`.
pub async fn connect_raw(
    config: &CoreConfig,
    statement_timeout: Option<std::time::Duration>,
) -> CoreResult<(Client, RawConnection)> {
    let driver_config = config.driver_config(statement_timeout);
    let (client, connection) = driver_config.connect(tls::connector(config)?).await?;
    Ok((client, connection))
}

/// A dedicated connection whose I/O task runs on the runtime until the client is dropped.
pub async fn connect_dedicated(
    config: &CoreConfig,
    statement_timeout: Option<std::time::Duration>,
) -> CoreResult<Client> {
    let (client, connection) = connect_raw(config, statement_timeout).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            log::debug!(target: "pgstreams", "pgstreams: dedicated connection ended: {error}");
        }
    });
    Ok(client)
}

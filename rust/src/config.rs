//! The resolved connection settings Python hands to the core (`PostgresOptions.to_core_config()`),
//! turned into a tokio-postgres `Config`. Parsing of the three connection-string forms and
//! option precedence stay in Python; this side only trusts already-validated values.

use std::time::Duration;

use pyo3::prelude::*;
use tokio_postgres::config::SslMode as DriverSslMode;

use crate::errors::{CoreError, CoreResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> CoreResult<Self> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(CoreError::Configuration(format!(
                    "ssl_mode must be disable, prefer, require, verify-ca or verify-full, got {other:?}"
                )))
            }
        })
    }
}

#[derive(Clone, Debug, FromPyObject)]
#[pyo3(from_item_all)]
pub struct RawCoreConfig {
    host: String,
    port: u16,
    database: String,
    user: String,
    password: Option<String>,
    ssl_mode: String,
    ssl_root_cert: Option<String>,
    application_name: Option<String>,
    connect_timeout: Option<f64>,
    command_timeout: Option<f64>,
    max_pool_size: usize,
    min_pool_size: usize,
    pool_timeout: Option<f64>,
    schema_name: String,
    read_batch_size: i64,
    listen_notify: bool,
}

/// Everything the core needs to open connections and run statements.
#[derive(Clone)]
pub struct CoreConfig {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Option<String>,
    pub ssl_mode: SslMode,
    pub ssl_root_cert: Option<String>,
    pub application_name: String,
    pub connect_timeout: Option<Duration>,
    pub command_timeout: Option<Duration>,
    pub max_pool_size: usize,
    pub min_pool_size: usize,
    pub pool_timeout: Option<Duration>,
    pub schema_name: String,
    pub read_batch_size: i64,
    pub listen_notify: bool,
}

// Hand-written so a `{:?}` in a log or panic can never print the password.
impl std::fmt::Debug for CoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CoreConfig({}@{}:{}/{} schema={})",
            self.user, self.host, self.port, self.database, self.schema_name
        )
    }
}

fn seconds(name: &str, value: Option<f64>) -> CoreResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(CoreError::Configuration(format!(
            "{name} must be a positive number of seconds, got {s}"
        ))),
    }
}

/// A schema name is spliced into SQL (identifiers cannot be bind parameters), so it must be
/// a plain identifier; it is also always double-quoted where it is used.
pub fn validate_identifier(name: &str) -> CoreResult<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || name.len() > 63 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(CoreError::Configuration(format!(
            "schema_name must be a plain identifier (letters, digits, underscore; at most 63 bytes), got {name:?}"
        )));
    }
    Ok(())
}

impl CoreConfig {
    pub fn from_raw(raw: RawCoreConfig) -> CoreResult<Self> {
        validate_identifier(&raw.schema_name)?;
        if raw.max_pool_size == 0 || raw.min_pool_size > raw.max_pool_size {
            return Err(CoreError::Configuration(
                "max_pool_size must be at least 1 and min_pool_size at most max_pool_size".into(),
            ));
        }
        if raw.read_batch_size < 1 {
            return Err(CoreError::Configuration(
                "read_batch_size must be at least 1".into(),
            ));
        }
        Ok(CoreConfig {
            host: raw.host,
            port: raw.port,
            database: raw.database,
            user: raw.user,
            password: raw.password,
            ssl_mode: SslMode::parse(&raw.ssl_mode)?,
            ssl_root_cert: raw.ssl_root_cert,
            application_name: raw.application_name.unwrap_or_else(|| "pgstreams".into()),
            connect_timeout: seconds("connect_timeout", raw.connect_timeout)?,
            command_timeout: seconds("command_timeout", raw.command_timeout)?,
            max_pool_size: raw.max_pool_size,
            min_pool_size: raw.min_pool_size,
            pool_timeout: seconds("pool_timeout", raw.pool_timeout)?,
            schema_name: raw.schema_name,
            read_batch_size: raw.read_batch_size,
            listen_notify: raw.listen_notify,
        })
    }

    /// The driver configuration. `statement_timeout` carries `command_timeout` to the server,
    /// which cancels a runaway statement itself (SQLSTATE 57014) and leaves the connection
    /// usable, unlike a client-side timeout that would abandon a connection mid-query.
    pub fn driver_config(&self, statement_timeout: Option<Duration>) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        if self.host.starts_with('/') {
            config.host_path(&self.host);
        } else {
            config.host(&self.host);
        }
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.database)
            .application_name(&self.application_name);
        if let Some(password) = &self.password {
            config.password(password);
        }
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout(timeout);
        }
        let millis = statement_timeout.map_or(0, |d| d.as_millis().max(1));
        config.options(format!("-c statement_timeout={millis}"));
        config.ssl_mode(match self.ssl_mode {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        });
        config
    }
}

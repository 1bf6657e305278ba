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

/// The longest name (stream, group, consumer) and the longest event type, correlation or
/// causation id, in UTF-8 bytes. They are index keys, and a B-tree entry must fit in about
/// 2,700 bytes: a stream and a group name together (a consumer offset's key) stay under it.
pub const MAX_NAME_BYTES: usize = 1000;

/// PostgreSQL's own ceiling on `max_connections`: a pool cannot usefully be larger.
pub const MAX_POOL_SIZE: usize = 262_143;

/// How many events one read may fetch at a time (a batch is held in memory whole).
pub const MAX_READ_BATCH_SIZE: i64 = 1_000_000;

/// The longest duration any argument may give (a visibility timeout, a delay, a wait, a
/// connect or pool timeout): 100 years. Longer ones mean "forever" in practice, and past it the
/// arithmetic stops being safe: PostgreSQL's timestamps end in the year 294276, and tokio's
/// clock overflows around 9.2e18 seconds (a `wait` of 1e19 once panicked inside a task).
pub const MAX_DURATION_SECONDS: f64 = 100.0 * 365.25 * 86_400.0;

/// The longest `command_timeout`: PostgreSQL's `statement_timeout` is a 32-bit count of
/// milliseconds (about 24.8 days).
pub const MAX_STATEMENT_TIMEOUT_SECONDS: f64 = 2_147_483.0;

/// A duration argument in seconds, checked: finite, positive (or zero where `allow_zero`),
/// and at most `max`. The error names the argument.
pub fn duration(name: &str, seconds: f64, allow_zero: bool, max: f64) -> CoreResult<Duration> {
    let kind = if allow_zero {
        "non-negative"
    } else {
        "positive"
    };
    if !seconds.is_finite() || seconds < 0.0 || (seconds == 0.0 && !allow_zero) {
        return Err(CoreError::Configuration(format!(
            "{name} must be a {kind} number of seconds, got {seconds}"
        )));
    }
    if seconds > max {
        return Err(CoreError::Configuration(format!(
            "{name} must be at most {max} seconds, got {seconds}"
        )));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|e| CoreError::Configuration(format!("{name}: {e}")))
}

fn optional_duration(name: &str, value: Option<f64>, max: f64) -> CoreResult<Option<Duration>> {
    value.map(|s| duration(name, s, false, max)).transpose()
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
        if raw.max_pool_size == 0
            || raw.max_pool_size > MAX_POOL_SIZE
            || raw.min_pool_size > raw.max_pool_size
        {
            return Err(CoreError::Configuration(format!(
                "max_pool_size must be 1 to {MAX_POOL_SIZE} and min_pool_size at most max_pool_size"
            )));
        }
        if !(1..=MAX_READ_BATCH_SIZE).contains(&raw.read_batch_size) {
            return Err(CoreError::Configuration(format!(
                "read_batch_size must be 1 to {MAX_READ_BATCH_SIZE}"
            )));
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
            connect_timeout: optional_duration(
                "connect_timeout",
                raw.connect_timeout,
                MAX_DURATION_SECONDS,
            )?,
            command_timeout: optional_duration(
                "command_timeout",
                raw.command_timeout,
                MAX_STATEMENT_TIMEOUT_SECONDS,
            )?,
            max_pool_size: raw.max_pool_size,
            min_pool_size: raw.min_pool_size,
            pool_timeout: optional_duration(
                "pool_timeout",
                raw.pool_timeout,
                MAX_DURATION_SECONDS,
            )?,
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

#[cfg(test)]
mod tests {
    use super::{duration, MAX_DURATION_SECONDS, MAX_STATEMENT_TIMEOUT_SECONDS};

    #[test]
    fn durations_within_bounds_are_kept() {
        assert_eq!(
            duration("d", 1.5, false, MAX_DURATION_SECONDS)
                .unwrap()
                .as_millis(),
            1500
        );
        assert_eq!(
            duration("d", 0.0, true, MAX_DURATION_SECONDS)
                .unwrap()
                .as_secs(),
            0
        );
        let longest = duration("d", MAX_DURATION_SECONDS, false, MAX_DURATION_SECONDS).unwrap();
        assert_eq!(longest.as_secs_f64(), MAX_DURATION_SECONDS);
    }

    #[test]
    fn bad_durations_are_refused_naming_the_argument_never_panicking() {
        for (value, allow_zero) in [
            (0.0, false),
            (-1.0, true),
            (f64::NAN, true),
            (f64::INFINITY, true),
            (1e19, true),
            (1e20, false),
            (f64::MAX, false),
            (MAX_DURATION_SECONDS * 1.000_001, false),
        ] {
            let error = duration("wait", value, allow_zero, MAX_DURATION_SECONDS).unwrap_err();
            assert!(error.to_string().starts_with("wait must be"), "{error}");
        }
        assert!(duration("command_timeout", 3e6, false, MAX_STATEMENT_TIMEOUT_SECONDS).is_err());
    }
}

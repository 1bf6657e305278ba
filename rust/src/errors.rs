//! One error type for the whole core, and its one mapping onto the Python classes of
//! `pgstreams.errors`, so both stores raise exactly the same exceptions.
//!
//! PostgreSQL errors are classified by SQLSTATE (never by message text) and keep it.

use pyo3::prelude::*;
use tokio_postgres::error::SqlState;

pyo3::import_exception!(pgstreams.errors, ConcurrencyError);
pyo3::import_exception!(pgstreams.errors, DuplicateEventError);
pyo3::import_exception!(pgstreams.errors, SerializationError);
pyo3::import_exception!(pgstreams.errors, ConfigurationError);
pyo3::import_exception!(pgstreams.errors, StoreClosedError);
pyo3::import_exception!(pgstreams.errors, StoreTimeoutError);
pyo3::import_exception!(pgstreams.errors, DatabaseError);
pyo3::import_exception!(pgstreams.errors, InternalError);
pyo3::import_exception!(pgstreams.errors, UndecodableEventError);
pyo3::import_exception!(pgstreams.errors, ConsumerFencedError);

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error(
        "stream {stream:?}: expected version {expected}, but the stream is at version {actual}"
    )]
    Concurrency {
        stream: String,
        expected: i64,
        actual: i64,
    },
    /// A failed expectation described by the server (a transaction's flush, migration 005):
    /// a stream's version or a consumer group's committed offset or position (no stream).
    #[error("{message}")]
    Conflict {
        stream: Option<String>,
        expected: Option<i64>,
        actual: Option<i64>,
        message: String,
    },
    #[error("{0}")]
    DuplicateEvent(String),
    /// A consumer group member's commit after it lost its unit (migration 006).
    #[error("{0}")]
    Fenced(String),
    #[error("{0}")]
    Serialization(String),
    #[error("{0}")]
    Configuration(String),
    #[error("the store is closed")]
    Closed,
    #[error(
        "this store was opened in process {opened_in} and cannot be used in process {used_in}, \
         which was forked from it: open a new store in this process (after the fork)"
    )]
    Forked { opened_in: u32, used_in: u32 },
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Connection(String),
    #[error("{0}")]
    Internal(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl From<deadpool_postgres::PoolError> for CoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match error {
            PoolError::Backend(e) => CoreError::Postgres(e),
            PoolError::Timeout(kind) => CoreError::Timeout(format!(
                "timed out getting a connection from the pool ({kind:?}); raise pool_timeout or max_pool_size"
            )),
            PoolError::Closed => CoreError::Closed,
            PoolError::NoRuntimeSpecified => CoreError::Internal("pool has no runtime".into()),
            PoolError::PostCreateHook(e) => CoreError::Connection(e.to_string()),
        }
    }
}

impl CoreError {
    /// The SQLSTATE PostgreSQL reported, if this error came from the server.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            CoreError::Postgres(e) => e.code(),
            _ => None,
        }
    }
}

/// The text a user should see for a driver error: the server's own message with its detail
/// and hint when the server sent one, the driver's description otherwise (never a password:
/// neither tokio-postgres nor the server echo it).
fn describe_postgres_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" (detail: {detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        }
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

/// Did the driver give up on a timeout (`connect_timeout`)? Decided by the I/O error kind in
/// the error's causes, never by its text.
fn timed_out(error: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// What a driver error is, for the caller: decided by SQLSTATE when the server sent one, else
/// by what the driver knows (the connection closed, an I/O timeout), never by message text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriverErrorKind {
    /// The server cancelled the statement: `statement_timeout` (`command_timeout`), 57014.
    CommandTimeout,
    /// Any other error the server reported; its SQLSTATE is kept.
    Server,
    /// The connection ended under the call.
    ConnectionLost,
    /// Connecting took longer than `connect_timeout`.
    ConnectTimeout,
    /// Anything else the driver reports.
    Other,
}

pub fn classify(code: Option<&SqlState>, closed: bool, timed_out: bool) -> DriverErrorKind {
    match code {
        Some(code) if *code == SqlState::QUERY_CANCELED => DriverErrorKind::CommandTimeout,
        Some(_) => DriverErrorKind::Server,
        None if closed => DriverErrorKind::ConnectionLost,
        None if timed_out => DriverErrorKind::ConnectTimeout,
        None => DriverErrorKind::Other,
    }
}

impl From<CoreError> for PyErr {
    fn from(error: CoreError) -> PyErr {
        match error {
            CoreError::Postgres(e) => {
                let message = describe_postgres_error(&e);
                let no_code = Option::<String>::None;
                match classify(e.code(), e.is_closed(), timed_out(&e)) {
                    DriverErrorKind::CommandTimeout => {
                        StoreTimeoutError::new_err(format!("command timed out: {message}"))
                    }
                    DriverErrorKind::Server => {
                        let code = e.code().map(|c| c.code().to_owned());
                        DatabaseError::new_err((message, code))
                    }
                    DriverErrorKind::ConnectionLost => DatabaseError::new_err((
                        format!("the connection to PostgreSQL was lost: {message}"),
                        no_code,
                    )),
                    DriverErrorKind::ConnectTimeout => {
                        StoreTimeoutError::new_err(format!("connect timed out: {message}"))
                    }
                    DriverErrorKind::Other => DatabaseError::new_err((message, no_code)),
                }
            }
            CoreError::Concurrency {
                stream,
                expected,
                actual,
            } => ConcurrencyError::new_err((stream, expected, actual)),
            CoreError::Conflict {
                stream,
                expected,
                actual,
                message,
            } => ConcurrencyError::new_err((stream, expected, actual, message)),
            CoreError::DuplicateEvent(m) => DuplicateEventError::new_err(m),
            CoreError::Fenced(m) => ConsumerFencedError::new_err(m),
            CoreError::Serialization(m) => SerializationError::new_err(m),
            CoreError::Configuration(m) => ConfigurationError::new_err(m),
            CoreError::Closed => StoreClosedError::new_err("the store is closed"),
            forked @ CoreError::Forked { .. } => StoreClosedError::new_err(forked.to_string()),
            CoreError::Timeout(m) => StoreTimeoutError::new_err(m),
            CoreError::Connection(m) => DatabaseError::new_err((m, Option::<String>::None)),
            CoreError::Internal(m) => {
                InternalError::new_err(format!("pgstreams internal error: {m}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{classify, DriverErrorKind};
    use tokio_postgres::error::SqlState;

    #[test]
    fn a_cancelled_statement_is_a_command_timeout_whatever_else_holds() {
        let code = Some(&SqlState::QUERY_CANCELED);
        assert_eq!(
            classify(code, false, false),
            DriverErrorKind::CommandTimeout
        );
        assert_eq!(classify(code, true, true), DriverErrorKind::CommandTimeout);
    }

    #[test]
    fn every_other_sqlstate_is_a_server_error() {
        for code in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::from_code("XX999"),
        ] {
            assert_eq!(classify(Some(&code), false, false), DriverErrorKind::Server);
        }
    }

    #[test]
    fn without_a_sqlstate_the_driver_state_decides() {
        assert_eq!(classify(None, true, false), DriverErrorKind::ConnectionLost);
        assert_eq!(classify(None, true, true), DriverErrorKind::ConnectionLost);
        assert_eq!(classify(None, false, true), DriverErrorKind::ConnectTimeout);
        assert_eq!(classify(None, false, false), DriverErrorKind::Other);
    }
}

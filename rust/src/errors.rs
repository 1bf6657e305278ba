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
    #[error("{0}")]
    DuplicateEvent(String),
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

impl From<CoreError> for PyErr {
    fn from(error: CoreError) -> PyErr {
        match error {
            CoreError::Postgres(e) => {
                let message = describe_postgres_error(&e);
                match e.code() {
                    // statement_timeout (command_timeout) and lock_timeout cancel with 57014 / 55P03.
                    Some(code) if *code == SqlState::QUERY_CANCELED => {
                        StoreTimeoutError::new_err(format!("command timed out: {message}"))
                    }
                    Some(code) => DatabaseError::new_err((message, code.code().to_owned())),
                    None if e.is_closed() => DatabaseError::new_err((
                        format!("the connection to PostgreSQL was lost: {message}"),
                        Option::<String>::None,
                    )),
                    None if timed_out(&e) => {
                        StoreTimeoutError::new_err(format!("connect timed out: {message}"))
                    }
                    None => DatabaseError::new_err((message, Option::<String>::None)),
                }
            }
            CoreError::Concurrency {
                stream,
                expected,
                actual,
            } => ConcurrencyError::new_err((stream, expected, actual)),
            CoreError::DuplicateEvent(m) => DuplicateEventError::new_err(m),
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

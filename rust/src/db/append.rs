//! Appending to persistent streams: the whole batch in one statement (one round trip, one
//! transaction) through the `append_events` function of migration 001.

use std::collections::HashSet;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::pgtypes::JsonText;
use crate::errors::{CoreError, CoreResult};

/// The statements of an append, for one schema.
pub struct Statements {
    pub append: String,
    pub append_many: String,
    pub begin_append: String,
    pub copy_events: String,
    pub classify_existing: String,
    pub positions_of: String,
    pub positions_of_range: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            append: format!(
                "SELECT outcome, first_offset, stream_version, positions \
                 FROM {s}.append_events($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            append_many: format!(
                "SELECT outcome, first_offset, stream_version, positions, call \
                 FROM {s}.append_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            begin_append: format!(
                "SELECT outcome, first_offset, stream_version FROM {s}.begin_append($1, $2, $3, $4)"
            ),
            copy_events: format!(
                "COPY {s}.events (stream_name, stream_offset, event_id, event_type, data, metadata, \
                 correlation_id, causation_id, version) FROM STDIN (FORMAT binary)"
            ),
            classify_existing: format!(
                "SELECT outcome, first_offset FROM {s}.classify_existing_events($1, $2)"
            ),
            positions_of: format!("SELECT {s}.positions_of($1)"),
            // The positions a COPY drew, read back in its transaction (COPY has no RETURNING).
            positions_of_range: format!(
                "SELECT array_agg(position ORDER BY stream_offset) FROM {s}.events \
                 WHERE stream_name = $1 AND stream_offset BETWEEN $2 AND $3"
            ),
        }
    }
}

/// One event to append or enqueue, already validated and serialized.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    pub data: JsonText,
    pub metadata: JsonText,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The event's schema version (`events.version`; the queue does not keep it).
    pub version: i32,
}

/// The columns of a batch, in the array form the SQL functions take.
pub struct EventColumns {
    pub ids: Vec<Uuid>,
    pub types: Vec<String>,
    pub data: Vec<JsonText>,
    pub metadata: Vec<JsonText>,
    pub correlation_ids: Vec<Option<String>>,
    pub causation_ids: Vec<Option<String>>,
    pub versions: Vec<i32>,
}

impl EventColumns {
    pub fn from_events(events: Vec<NewEvent>) -> Self {
        let n = events.len();
        let mut columns = EventColumns {
            ids: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
            metadata: Vec::with_capacity(n),
            correlation_ids: Vec::with_capacity(n),
            causation_ids: Vec::with_capacity(n),
            versions: Vec::with_capacity(n),
        };
        for e in events {
            columns.ids.push(e.id);
            columns.types.push(e.event_type);
            columns.data.push(e.data);
            columns.metadata.push(e.metadata);
            columns.correlation_ids.push(e.correlation_id);
            columns.causation_ids.push(e.causation_id);
            columns.versions.push(e.version);
        }
        columns
    }

    /// The columns of several batches, one after the other (one statement's arrays).
    pub fn concat<'a>(batches: impl Iterator<Item = &'a EventColumns> + Clone) -> Self {
        let total: usize = batches.clone().map(|c| c.ids.len()).sum();
        let mut all = EventColumns {
            ids: Vec::with_capacity(total),
            types: Vec::with_capacity(total),
            data: Vec::with_capacity(total),
            metadata: Vec::with_capacity(total),
            correlation_ids: Vec::with_capacity(total),
            causation_ids: Vec::with_capacity(total),
            versions: Vec::with_capacity(total),
        };
        for c in batches {
            all.ids.extend_from_slice(&c.ids);
            all.types.extend_from_slice(&c.types);
            all.data.extend_from_slice(&c.data);
            all.metadata.extend_from_slice(&c.metadata);
            all.correlation_ids.extend_from_slice(&c.correlation_ids);
            all.causation_ids.extend_from_slice(&c.causation_ids);
            all.versions.extend_from_slice(&c.versions);
        }
        all
    }
}

/// Refuses a batch that names one id twice before anything is sent.
pub fn check_unique_ids(ids: &[Uuid]) -> CoreResult<()> {
    let mut seen = HashSet::with_capacity(ids.len());
    for (index, id) in ids.iter().enumerate() {
        if !seen.insert(id) {
            return Err(CoreError::DuplicateEvent(format!(
                "events[{index}]: event id {id} appears more than once in the batch"
            )));
        }
    }
    Ok(())
}

fn offsets(first: i64, count: usize) -> Vec<i64> {
    (first..first + count as i64).collect()
}

/// What an append wrote (or, for a retry, found): one offset and one global position per
/// event, in event order.
#[derive(Debug, Default)]
pub struct Appended {
    pub offsets: Vec<i64>,
    pub positions: Vec<i64>,
    /// The events were all stored already, at these offsets, by an earlier call with the
    /// same ids (a retry): nothing was written.
    pub retried: bool,
}

impl Appended {
    /// This append, or `DuplicateEventError` if it was a retry and the caller asked for
    /// `strict` ids (an id stored before is a duplicate even when it looks like a retry).
    pub fn checked(self, stream: &str, strict: bool) -> CoreResult<Appended> {
        if strict && self.retried {
            return Err(duplicate(stream));
        }
        Ok(self)
    }
}

/// Positions as the server sent them, checked against the number of events: an append that
/// cannot say where its events went is a bug, not a result.
fn positions(found: Option<Vec<i64>>, count: usize) -> CoreResult<Vec<i64>> {
    match found {
        Some(positions) if positions.len() == count => Ok(positions),
        other => Err(CoreError::Internal(format!(
            "an append of {count} events found {} positions",
            other.map_or(0, |p| p.len())
        ))),
    }
}

fn duplicate(stream: &str) -> CoreError {
    CoreError::DuplicateEvent(format!(
        "stream '{stream}': one or more event ids of this call are already stored (in another stream, \
         at other offsets or in another order); nothing was written"
    ))
}

async fn classify_duplicate(
    client: &tokio_postgres::Client,
    sql: &Statements,
    stream: &str,
    ids: &[Uuid],
) -> CoreResult<Appended> {
    let statement = client.prepare(&sql.classify_existing).await?;
    let row = client.query_one(&statement, &[&stream, &ids]).await?;
    let outcome: String = row.get(0);
    match outcome.as_str() {
        "retry" => stored_positions(client, sql, ids, offsets(row.get(1), ids.len())).await,
        _ => Err(duplicate(stream)),
    }
}

/// A retry's answer: the offsets it was given and the positions its events hold.
async fn stored_positions(
    client: &tokio_postgres::Client,
    sql: &Statements,
    ids: &[Uuid],
    offsets: Vec<i64>,
) -> CoreResult<Appended> {
    let statement = client.prepare(&sql.positions_of).await?;
    let found = client.query_one(&statement, &[&ids]).await?.get(0);
    Ok(Appended {
        positions: positions(found, ids.len())?,
        offsets,
        retried: true,
    })
}

/// From this many events on, an append goes through binary COPY (four round trips, the
/// fastest insert PostgreSQL has); below it, through one `append_events` statement (one
/// round trip). Measured here on ~250-byte events: INSERT ... SELECT FROM unnest reaches
/// 0.6-0.9x of binary COPY at 1000 events, while for a few events the extra round trips
/// (~0.1 ms each) cost more than the insert.
pub const COPY_THRESHOLD: usize = 64;

/// Appends the batch to `stream`; returns their offsets. A retry of a call that already
/// committed returns the stored offsets and writes nothing. The batch's ids were checked
/// unique when it was built (`EventBatch`).
pub async fn append(
    client: &mut deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    columns: &EventColumns,
    expected_version: Option<i64>,
) -> CoreResult<Appended> {
    if columns.ids.is_empty() {
        return Ok(Appended::default());
    }
    let result = if columns.ids.len() >= COPY_THRESHOLD {
        append_by_copy(client, sql, stream, columns, expected_version).await
    } else {
        append_by_statement(client, sql, stream, columns, expected_version).await
    };
    match result {
        // An id stored meanwhile by another call: a retry racing its original, or a duplicate.
        Err(CoreError::Postgres(error)) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            classify_duplicate(client, sql, stream, &columns.ids).await
        }
        other => other,
    }
}

/// What `begin_append` answered, as offsets or the error to raise.
fn outcome(
    row: &tokio_postgres::Row,
    stream: &str,
    count: usize,
    expected_version: Option<i64>,
) -> CoreResult<Vec<i64>> {
    let outcome: String = row.get(0);
    match outcome.as_str() {
        "ok" | "retry" => Ok(offsets(row.get(1), count)),
        "conflict" => Err(CoreError::Concurrency {
            stream: stream.to_owned(),
            expected: expected_version.unwrap_or(-1),
            actual: row.get(2),
        }),
        "duplicate" => Err(duplicate(stream)),
        other => Err(CoreError::Internal(format!("append returned {other:?}"))),
    }
}

/// What `append_events`/`append_many` answered (`outcome`, then the positions in column 3).
fn appended(
    row: &tokio_postgres::Row,
    stream: &str,
    count: usize,
    expected_version: Option<i64>,
) -> CoreResult<Appended> {
    let offsets = outcome(row, stream, count, expected_version)?;
    Ok(Appended {
        positions: positions(row.get(3), count)?,
        offsets,
        retried: row.get::<_, String>(0) == "retry",
    })
}

/// One caller's append in a group commit.
pub struct GroupedAppend<'a> {
    pub stream: &'a str,
    pub columns: &'a EventColumns,
    pub expected_version: Option<i64>,
}

/// The appends of several callers in one statement, one transaction, one commit
/// (`append_many`, migration 001); each gets its own offsets or error. Small batches only
/// (below `COPY_THRESHOLD` each): their columns are concatenated into one set of arrays.
pub async fn append_many(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    appends: &[GroupedAppend<'_>],
) -> CoreResult<Vec<CoreResult<Appended>>> {
    let all = EventColumns::concat(appends.iter().map(|a| a.columns));
    let streams: Vec<&str> = appends.iter().map(|a| a.stream).collect();
    let expected: Vec<Option<i64>> = appends.iter().map(|a| a.expected_version).collect();
    let counts: Vec<i32> = appends.iter().map(|a| a.columns.ids.len() as i32).collect();
    let statement = client.prepare_cached(&sql.append_many).await?;
    let rows = client
        .query(
            &statement,
            &[
                &streams,
                &expected,
                &counts,
                &all.ids,
                &all.types,
                &all.data,
                &all.metadata,
                &all.correlation_ids,
                &all.causation_ids,
                &all.versions,
            ],
        )
        .await?;
    let mut results: Vec<CoreResult<Appended>> = appends
        .iter()
        .map(|_| {
            Err(CoreError::Internal(
                "append_many gave no answer for a call".into(),
            ))
        })
        .collect();
    for row in &rows {
        let call = row.get::<_, i32>(4) as usize - 1;
        let append = &appends[call];
        results[call] = appended(
            row,
            append.stream,
            append.columns.ids.len(),
            append.expected_version,
        );
    }
    Ok(results)
}

async fn append_by_statement(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    columns: &EventColumns,
    expected_version: Option<i64>,
) -> CoreResult<Appended> {
    let statement = client.prepare_cached(&sql.append).await?;
    let row = client
        .query_one(
            &statement,
            &[
                &stream,
                &expected_version,
                &columns.ids,
                &columns.types,
                &columns.data,
                &columns.metadata,
                &columns.correlation_ids,
                &columns.causation_ids,
                &columns.versions,
            ],
        )
        .await?;
    appended(&row, stream, columns.ids.len(), expected_version)
}

/// Opens the transaction of a write sent as a pipeline (a COPY append or enqueue); a client
/// that dies inside it cannot keep its locks (an append's: the global append lock) for more
/// than this (the server ends an idle transaction), while a live one is never idle there: its
/// statements are sent back to back.
pub(super) const BEGIN_PIPELINED_WRITE: &str =
    "BEGIN; SET LOCAL idle_in_transaction_session_timeout = '10s'";

/// `begin_append`, then the events by binary COPY, then COMMIT, in one transaction and two
/// round trips: BEGIN, `begin_append` and the start of the COPY are sent together (the
/// offsets `begin_append` gives arrive with the server's go-ahead for the COPY data), then
/// the data, then the end of the COPY and COMMIT together. The global append lock, taken by
/// `begin_append`, is thus held for one round trip and the data, not for four round trips.
/// On an error the transaction is rolled back; if the caller is cancelled anywhere, its
/// connection is closed (`store::PooledConnection`), which ends the transaction too.
async fn append_by_copy(
    client: &mut deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    columns: &EventColumns,
    expected_version: Option<i64>,
) -> CoreResult<Appended> {
    let count = columns.ids.len();
    let begin = client.prepare_cached(&sql.begin_append).await?;
    let copy = client.prepare_cached(&sql.copy_events).await?;
    // Prepared before the COPY starts: nothing else can be sent on the connection during it.
    let drawn = client.prepare_cached(&sql.positions_of_range).await?;
    let params: [&(dyn ToSql + Sync); 4] =
        [&stream, &expected_version, &(count as i64), &columns.ids];
    let (began, started, sink) = tokio::join!(
        client.batch_execute(BEGIN_PIPELINED_WRITE),
        client.query_one(&begin, &params),
        client.copy_in::<_, bytes::Bytes>(&copy),
    );
    let (row, sink) = match (began.and(started), sink) {
        (Ok(row), Ok(sink)) => (row, sink),
        (Err(error), sink) => {
            drop(sink); // the COPY, if it started, must be aborted before the ROLLBACK
            rollback(client).await;
            return Err(error.into());
        }
        (Ok(_), Err(error)) => {
            rollback(client).await;
            return Err(error.into());
        }
    };
    let offsets = match outcome(&row, stream, count, expected_version) {
        Ok(offsets) if row.get::<_, String>(0) == "ok" => offsets,
        other => {
            drop(sink); // aborts the COPY
            rollback(client).await;
            // A retry finds its events stored: nothing to write, their positions to tell.
            return match other {
                Ok(offsets) => stored_positions(client, sql, &columns.ids, offsets).await,
                Err(error) => Err(error),
            };
        }
    };
    let mut writer = Box::pin(BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::INT8,
            Type::UUID,
            Type::TEXT,
            Type::JSONB,
            Type::JSONB,
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
        ],
    ));
    for (index, offset) in offsets.iter().enumerate() {
        let written = writer
            .as_mut()
            .write(&[
                &stream,
                offset,
                &columns.ids[index],
                &columns.types[index],
                &columns.data[index],
                &columns.metadata[index],
                &columns.correlation_ids[index],
                &columns.causation_ids[index],
                &columns.versions[index],
            ])
            .await;
        if let Err(error) = written {
            drop(writer); // aborts the COPY, which must end before the ROLLBACK
            rollback(client).await;
            return Err(error.into());
        }
    }
    // The positions the COPY drew and COMMIT go out right behind the end of the COPY. If the
    // COPY failed (an id stored meanwhile), the transaction is aborted and COMMIT only ends it.
    let range: [&(dyn ToSql + Sync); 3] = [&stream, &offsets[0], &offsets[count - 1]];
    let (copied, found, committed) = tokio::join!(
        writer.as_mut().finish(),
        client.query_one(&drawn, &range),
        client.batch_execute("COMMIT")
    );
    copied?;
    let found = found?;
    committed?;
    Ok(Appended {
        positions: positions(found.get(0), count)?,
        offsets,
        retried: false,
    })
}

/// Ends the transaction of a failed write; if even that fails the connection is broken and
/// the pool will not hand it out again.
pub(super) async fn rollback(client: &deadpool_postgres::Client) {
    if let Err(error) = client.batch_execute("ROLLBACK").await {
        log::debug!(target: "pgstreams", "pgstreams: rollback after a failed write failed: {error}");
    }
}

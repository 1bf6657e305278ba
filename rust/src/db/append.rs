//! Appending to persistent streams: the whole batch in one statement (one round trip, one
//! transaction) through the `append_events` function of migration 001.

use std::collections::HashSet;

use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::pgtypes::JsonText;
use super::sql::Sql;
use crate::errors::{CoreError, CoreResult};

/// One event to append or enqueue, already validated and serialized.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: Uuid,
    pub event_type: String,
    pub data: JsonText,
    pub metadata: JsonText,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
}

/// The columns of a batch, in the array form the SQL functions take.
pub struct EventColumns {
    pub ids: Vec<Uuid>,
    pub types: Vec<String>,
    pub data: Vec<JsonText>,
    pub metadata: Vec<JsonText>,
    pub correlation_ids: Vec<Option<String>>,
    pub causation_ids: Vec<Option<String>>,
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
        };
        for e in events {
            columns.ids.push(e.id);
            columns.types.push(e.event_type);
            columns.data.push(e.data);
            columns.metadata.push(e.metadata);
            columns.correlation_ids.push(e.correlation_id);
            columns.causation_ids.push(e.causation_id);
        }
        columns
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

async fn classify_duplicate(
    client: &tokio_postgres::Client,
    sql: &Sql,
    stream: &str,
    ids: &[Uuid],
) -> CoreResult<Vec<i64>> {
    let statement = client.prepare(&sql.classify_existing).await?;
    let row = client.query_one(&statement, &[&stream, &ids]).await?;
    let outcome: String = row.get(0);
    match outcome.as_str() {
        "retry" => Ok(offsets(row.get(1), ids.len())),
        _ => Err(CoreError::DuplicateEvent(format!(
            "stream '{stream}': one or more event ids of this call are already stored (in another stream, \
             at other offsets or in another order); nothing was written"
        ))),
    }
}

/// Appends `events` to `stream`; returns their offsets. A retry of a call that already
/// committed returns the stored offsets and writes nothing.
pub async fn append(
    client: &deadpool_postgres::Client,
    sql: &Sql,
    stream: &str,
    events: Vec<NewEvent>,
    expected_version: Option<i64>,
) -> CoreResult<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let columns = EventColumns::from_events(events);
    check_unique_ids(&columns.ids)?;
    let statement = client.prepare_cached(&sql.append).await?;
    let result = client
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
            ],
        )
        .await;
    let row = match result {
        Ok(row) => row,
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return classify_duplicate(client, sql, stream, &columns.ids).await;
        }
        Err(error) => return Err(error.into()),
    };
    let outcome: String = row.get(0);
    match outcome.as_str() {
        "ok" | "retry" => Ok(offsets(row.get(1), columns.ids.len())),
        "conflict" => Err(CoreError::Concurrency {
            stream: stream.to_owned(),
            expected: expected_version.unwrap_or(-1),
            actual: row.get(2),
        }),
        other => Err(CoreError::Internal(format!(
            "append_events returned {other:?}"
        ))),
    }
}

//! A transaction across streams, queues and consumer progress (`store.transaction()`).
//!
//! The caller's own statements run at once on the held connection; the store operations are
//! staged by the caller and flushed here, at commit, in ONE round trip: every staged statement
//! and COMMIT are sent back to back (tokio-postgres pipelines requests on one connection) and
//! the answers read after. A failed expectation therefore cannot be an answer the client reads
//! before deciding to commit: the functions of migration 005 raise instead, the transaction is
//! aborted, and the COMMIT sent behind them rolls it back.
//!
//! Lock order, so that two transactions cannot deadlock and nobody holds the feed's lock
//! while the client thinks: consumer offsets, then feed positions, then acknowledgements (each
//! kind in key order), then enqueues, then all appends in one `append_in_transaction` call
//! (stream rows in name order, then the global append lock, last, for the insert and the
//! COMMIT only). Positions follow call order; only the locking is sorted.

use std::sync::Arc;

use futures_util::future::join_all;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::append::{check_unique_ids, Appended, EventColumns};
use super::queue::Receipt;
use super::sql::Sql;
use crate::errors::{CoreError, CoreResult};

/// The statements of a transaction, for one schema.
pub struct Statements {
    pub append: String,
    pub commit_offset: String,
    pub commit_position: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            append: format!(
                "SELECT first_offsets, positions \
                 FROM {s}.append_in_transaction($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            commit_offset: format!("SELECT {s}.commit_offset_in_transaction($1, $2, $3, $4, $5)"),
            commit_position: format!("SELECT {s}.commit_position_in_transaction($1, $2, $3, $4)"),
        }
    }
}

/// `BEGIN`, bounding how long the transaction may sit idle between the caller's statements:
/// a client that dies (or hangs) inside it cannot hold its locks for longer than that.
pub fn begin(idle_limit_ms: Option<u64>) -> String {
    match idle_limit_ms {
        Some(ms) => format!("BEGIN; SET LOCAL idle_in_transaction_session_timeout = {ms}"),
        None => "BEGIN".to_owned(),
    }
}

/// Sends `begin` (a transaction's `BEGIN`, while it is still due), or nothing: joined with the
/// transaction's first statement, so both go out in one round trip.
pub async fn send_begin(
    client: &tokio_postgres::Client,
    begin: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    match begin {
        Some(sql) => client.batch_execute(sql).await,
        None => Ok(()),
    }
}

pub struct StagedAppend {
    pub stream: String,
    pub columns: Arc<EventColumns>,
    pub expected_version: Option<i64>,
}

pub struct StagedEnqueue {
    pub stream: String,
    pub columns: Arc<EventColumns>,
    pub delay_seconds: f64,
}

/// A consumer group's commit on a stream (`stream: Some`) or on the global feed (`None`:
/// `value` is a position). `check_expected`: `expected` must be what is committed (None:
/// nothing yet).
pub struct StagedCommit {
    pub stream: Option<String>,
    pub group: String,
    pub value: i64,
    pub check_expected: bool,
    pub expected: Option<i64>,
    /// A consumer group member's commit: `(member, generation)`, fenced like the member's
    /// own commits (migration 006; `expected` is not checked then).
    pub fence: Option<(String, i64)>,
}

/// Everything a transaction staged, in call order per kind.
#[derive(Default)]
pub struct Staged {
    pub appends: Vec<StagedAppend>,
    pub enqueues: Vec<StagedEnqueue>,
    pub commits: Vec<StagedCommit>,
    pub acknowledgements: Vec<Vec<Receipt>>,
}

impl Staged {
    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
            && self.enqueues.is_empty()
            && self.commits.is_empty()
            && self.acknowledgements.is_empty()
    }
}

/// The results, in call order per kind: what each append wrote, how many each enqueue
/// inserted, whether each commit moved its group, how many each acknowledgement deleted.
pub struct Flushed {
    pub appends: Vec<Appended>,
    pub enqueued: Vec<i64>,
    pub commits: Vec<bool>,
    pub acknowledged: Vec<i64>,
}

/// The indexes of `items` in the order their keys sort (ties in call order).
fn lock_order<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| key(&items[i]));
    order
}

/// Sends the staged work and COMMIT together and reads the answers. On success the
/// transaction is committed; on an error it is over too (rolled back), and the error is the
/// first statement's that failed: the ones behind it only report the aborted transaction.
pub async fn flush_and_commit(
    client: &deadpool_postgres::Client,
    sql: &Sql,
    staged: &Staged,
    notify: bool,
    begin: Option<&str>,
) -> CoreResult<Flushed> {
    let all_ids: Vec<_> = staged
        .appends
        .iter()
        .flat_map(|a| a.columns.ids.iter().copied())
        .collect();
    check_unique_ids(&all_ids).map_err(|_| {
        CoreError::DuplicateEvent(
            "an event id appears more than once among this transaction's appends; nothing in \
             the transaction was written"
                .into(),
        )
    })?;
    let appends: Vec<&StagedAppend> = staged
        .appends
        .iter()
        .filter(|a| !a.columns.ids.is_empty())
        .collect();

    // Prepared first (cached per connection: a round trip only the first time).
    let (commit_offset, commit_position, member_offset, member_position) = tokio::try_join!(
        client.prepare_cached(&sql.transaction.commit_offset),
        client.prepare_cached(&sql.transaction.commit_position),
        client.prepare_cached(&sql.groups.commit_offset),
        client.prepare_cached(&sql.groups.commit_position),
    )?;
    let (acknowledge, enqueue, append) = tokio::try_join!(
        client.prepare_cached(&sql.queue.acknowledge),
        client.prepare_cached(&sql.queue.enqueue),
        client.prepare_cached(&sql.transaction.append),
    )?;

    let commit_order = lock_order(&staged.commits, |c| {
        (c.stream.is_none(), c.stream.clone(), c.group.clone())
    });
    let commits = join_all(commit_order.iter().map(|&i| {
        let c = &staged.commits[i];
        let (statement, params): (_, Vec<&(dyn ToSql + Sync)>) = match (&c.stream, &c.fence) {
            (Some(stream), None) => (
                &commit_offset,
                vec![stream, &c.group, &c.value, &c.check_expected, &c.expected],
            ),
            (None, None) => (
                &commit_position,
                vec![&c.group, &c.value, &c.check_expected, &c.expected],
            ),
            (Some(stream), Some((member, generation))) => (
                &member_offset,
                vec![stream, &c.group, &c.value, member, generation],
            ),
            (None, Some((member, generation))) => (
                &member_position,
                vec![&c.group, &c.value, member, generation],
            ),
        };
        async move { client.query_one(statement, &params).await }
    }));

    let ack_columns: Vec<_> = staged
        .acknowledgements
        .iter()
        .map(|receipts| {
            let mut sorted = receipts.clone();
            sorted.sort_by_key(|r| r.id);
            sorted.into_iter().map(|r| (r.id, r.lease)).unzip()
        })
        .collect::<Vec<(Vec<_>, Vec<_>)>>();
    let ack_order = lock_order(&ack_columns, |(ids, _)| ids.first().copied());
    let acknowledgements = join_all(ack_order.iter().map(|&i| {
        let (ids, leases) = &ack_columns[i];
        let acknowledge = &acknowledge;
        async move { client.query_one(acknowledge, &[ids, leases]).await }
    }));

    let enqueues = join_all(staged.enqueues.iter().map(|e| {
        let enqueue = &enqueue;
        let c = &e.columns;
        async move {
            client
                .query_one(
                    enqueue,
                    &[
                        &e.stream,
                        &c.ids,
                        &c.types,
                        &c.data,
                        &c.metadata,
                        &c.correlation_ids,
                        &c.causation_ids,
                        &e.delay_seconds,
                        &notify,
                    ],
                )
                .await
        }
    }));

    let streams: Vec<&str> = appends.iter().map(|a| a.stream.as_str()).collect();
    let expected: Vec<Option<i64>> = appends.iter().map(|a| a.expected_version).collect();
    let counts: Vec<i32> = appends.iter().map(|a| a.columns.ids.len() as i32).collect();
    let columns = EventColumns::concat(appends.iter().map(|a| a.columns.as_ref()));
    let appended = async {
        if appends.is_empty() {
            return Ok(None);
        }
        let params: [&(dyn ToSql + Sync); 10] = [
            &streams,
            &expected,
            &counts,
            &columns.ids,
            &columns.types,
            &columns.data,
            &columns.metadata,
            &columns.correlation_ids,
            &columns.causation_ids,
            &columns.versions,
        ];
        client.query_one(&append, &params).await.map(Some)
    };

    // BEGIN (when no statement of the caller's sent it already), the work, COMMIT: one round
    // trip.
    let begun = send_begin(client, begin);
    let (begun, commits, acknowledgements, enqueues, appended, committed) = tokio::join!(
        begun,
        commits,
        acknowledgements,
        enqueues,
        appended,
        client.batch_execute("COMMIT"),
    );

    // The first failure in the order sent is the cause.
    begun?;
    let mut commit_results = vec![false; staged.commits.len()];
    for (&index, row) in commit_order.iter().zip(commits) {
        commit_results[index] = row.map_err(transaction_error)?.get(0);
    }
    let mut acknowledged = vec![0; staged.acknowledgements.len()];
    for (&index, row) in ack_order.iter().zip(acknowledgements) {
        acknowledged[index] = row.map_err(transaction_error)?.get(0);
    }
    let enqueued = enqueues
        .into_iter()
        .map(|row| row.map(|r| r.get(0)).map_err(transaction_error))
        .collect::<CoreResult<Vec<i64>>>()?;
    let appended = appended.map_err(transaction_error)?;
    committed?;
    Ok(Flushed {
        appends: split_appended(staged, appended)?,
        enqueued,
        commits: commit_results,
        acknowledged,
    })
}

/// Each staged append's offsets and positions, from the one call's arrays (empty appends
/// were not sent and get empty results).
fn split_appended(staged: &Staged, row: Option<tokio_postgres::Row>) -> CoreResult<Vec<Appended>> {
    let (first_offsets, positions): (Vec<i64>, Vec<i64>) = match row {
        Some(row) => (
            row.get(0),
            row.get::<_, Option<Vec<i64>>>(1).unwrap_or_default(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut first_offsets = first_offsets.into_iter();
    let mut positions = positions.into_iter();
    let mut results = Vec::with_capacity(staged.appends.len());
    for append in &staged.appends {
        let count = append.columns.ids.len();
        if count == 0 {
            results.push(Appended::default());
            continue;
        }
        let first = first_offsets.next().ok_or_else(|| {
            CoreError::Internal("append_in_transaction returned too few offsets".into())
        })?;
        let drawn: Vec<i64> = positions.by_ref().take(count).collect();
        if drawn.len() != count {
            return Err(CoreError::Internal(
                "append_in_transaction returned too few positions".into(),
            ));
        }
        results.push(Appended {
            offsets: (first..first + count as i64).collect(),
            positions: drawn,
            retried: false,
        });
    }
    Ok(results)
}

/// The errors the functions of migration 005 raise, as the errors they stand for.
fn transaction_error(error: tokio_postgres::Error) -> CoreError {
    let Some(db) = error.as_db_error() else {
        return error.into();
    };
    match db.code().code() {
        "PS409" => {
            let detail: serde_json::Value = db
                .detail()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            CoreError::Conflict {
                stream: detail["stream"].as_str().map(str::to_owned),
                expected: detail["expected"].as_i64(),
                actual: detail["actual"].as_i64(),
                message: db.message().to_owned(),
            }
        }
        "PS422" => CoreError::Configuration(db.message().to_owned()),
        "PS410" => CoreError::Fenced(db.message().to_owned()),
        _ if db.code() == &SqlState::UNIQUE_VIOLATION
            && db.constraint() == Some("events_event_id_key") =>
        {
            CoreError::DuplicateEvent(
                "an event id appended in this transaction is already stored; nothing in the \
                 transaction was written"
                    .into(),
            )
        }
        _ => error.into(),
    }
}

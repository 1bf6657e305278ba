//! The reads of the `eventsourcing` recorders (`pgstreams.eventsourcing`), with that
//! library's filters applied by the server and only what its records need sent back (the
//! state decoded from base64 by the server, no JSON for the client to parse). An eventsourcing
//! event is a pgstreams event of the stream `{prefix}{originator_id}` with its state in
//! `data->>'state'` (base64) and its version in `metadata->>'originator_version'`.

use tokio_postgres::Row;

use crate::errors::CoreResult;

const VERSION: &str = "(metadata->>'originator_version')::bigint";
const STATE: &str = "decode(data->>'state', 'base64')";

pub struct Statements {
    versions_ascending: String,
    versions_descending: String,
    /// By (originator ids are uuids, filtered by topics).
    notifications: [[String; 2]; 2],
}

impl Statements {
    pub fn new(s: &str) -> Self {
        // A row without a version (another program's) is kept by every filter and sorts
        // first, so the read fails on it (the caller raises) instead of skipping it.
        let versions = format!(
            "SELECT {VERSION} AS version, event_type, {STATE} FROM {s}.events \
             WHERE stream_name = $1 AND ({VERSION} IS NULL OR \
             (($2::bigint IS NULL OR {VERSION} > $2) AND ($3::bigint IS NULL OR {VERSION} <= $3)))"
        );
        // The feed in position order, always from the position index: no condition on the
        // stream, which a planner on statistics older than the events answers with a scan of
        // every stream of the prefix and a sort. Other recorders' events come back as their
        // position alone (the reader needs it to go on after them).
        let notifications = |uuid_ids: bool, topics: bool| {
            let mine = "starts_with(stream_name, $3)";
            let cast = if uuid_ids { "::uuid" } else { "" };
            let of_topics = if topics {
                " AND event_type = ANY($5)"
            } else {
                ""
            };
            format!(
                "SELECT position, \
                 CASE WHEN {mine} THEN substr(stream_name, length($3) + 1){cast} END, \
                 event_type, CASE WHEN {mine} THEN {STATE} END, \
                 CASE WHEN {mine} THEN {VERSION} END \
                 FROM {s}.events WHERE position > $1 AND position <= $2{of_topics} \
                 ORDER BY position LIMIT $4"
            )
        };
        Statements {
            versions_ascending: format!("{versions} ORDER BY version NULLS FIRST LIMIT $4"),
            versions_descending: format!("{versions} ORDER BY version DESC NULLS FIRST LIMIT $4"),
            notifications: [
                [notifications(false, false), notifications(false, true)],
                [notifications(true, false), notifications(true, true)],
            ],
        }
    }
}

/// The events of `stream` with versions in (`gt`, `lte`], by version, at most `limit`:
/// rows of (version, type, state).
pub async fn select_versions(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    range: (Option<i64>, Option<i64>),
    limit: Option<i64>,
    descending: bool,
) -> CoreResult<Vec<Row>> {
    let text = if descending {
        &sql.versions_descending
    } else {
        &sql.versions_ascending
    };
    let statement = client.prepare_cached(text).await?;
    Ok(client
        .query(&statement, &[&stream, &range.0, &range.1, &limit])
        .await?)
}

/// Which events of the feed a notification read wants.
pub struct FeedWindow<'a> {
    pub after: i64,
    pub until: i64,
    pub count: i64,
    pub prefix: &'a str,
    pub topics: Option<&'a [String]>,
    pub uuid_ids: bool,
}

/// Up to `count` events of the feed in (`after`, `until`], of `topics`: rows of (position,
/// originator id, type, state, version), the last four NULL for another recorder's.
pub async fn select_notifications(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    window: &FeedWindow<'_>,
) -> CoreResult<Vec<Row>> {
    let text =
        &sql.notifications[usize::from(window.uuid_ids)][usize::from(window.topics.is_some())];
    let statement = client.prepare_cached(text).await?;
    let rows = match window.topics {
        Some(topics) => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
                &window.after,
                &window.until,
                &window.prefix,
                &window.count,
                &topics,
            ];
            client.query(&statement, &params).await?
        }
        None => {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&window.after, &window.until, &window.prefix, &window.count];
            client.query(&statement, &params).await?
        }
    };
    Ok(rows)
}

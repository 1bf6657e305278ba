//! Consumer group membership (`store.subscribe`): heartbeats, unit leases with a fencing
//! generation, fenced commits. The rules are the functions of migration 006; each call here is
//! one statement.

use crate::errors::{CoreError, CoreResult};

/// The statements of consumer groups, for one schema.
pub struct Statements {
    pub heartbeat: String,
    pub acquire: String,
    pub release: String,
    pub leave: String,
    pub commit_offset: String,
    pub commit_position: String,
    pub members: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            heartbeat: format!("SELECT {s}.consumer_heartbeat($1, $2, $3, $4)"),
            acquire: format!("SELECT unit, generation FROM {s}.consumer_acquire($1, $2, $3, $4)"),
            release: format!("SELECT {s}.consumer_release($1, $2, $3)"),
            leave: format!("SELECT {s}.consumer_leave($1, $2, $3)"),
            commit_offset: format!("SELECT {s}.commit_offset_as_member($1, $2, $3, $4, $5)"),
            commit_position: format!("SELECT {s}.commit_position_as_member($1, $2, $3, $4)"),
            // Every registered member with the units it holds (by group, then member).
            members: format!(
                "SELECT r.consumer_group, r.consumer_id, r.last_heartbeat, \
                        coalesce(array_agg(l.unit ORDER BY l.unit) FILTER (WHERE l.unit IS NOT NULL), '{{}}') \
                 FROM {s}.consumer_registrations r \
                 LEFT JOIN {s}.consumer_leases l \
                   ON l.consumer_group = r.consumer_group AND l.holder = r.consumer_id \
                 GROUP BY r.consumer_group, r.consumer_id, r.last_heartbeat \
                 ORDER BY r.consumer_group, r.consumer_id"
            ),
        }
    }
}

/// The fenced commits' refusal (SQLSTATE PS410, migration 006) as its own error.
pub fn fenced(error: tokio_postgres::Error) -> CoreError {
    match error.as_db_error() {
        Some(db) if db.code().code() == "PS410" => CoreError::Fenced(db.message().to_owned()),
        _ => error.into(),
    }
}

pub async fn heartbeat(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    selector: &str,
    group: &str,
    member: &str,
    session_timeout: f64,
) -> CoreResult<Vec<String>> {
    let statement = client.prepare_cached(&sql.heartbeat).await?;
    let row = client
        .query_one(&statement, &[&selector, &group, &member, &session_timeout])
        .await?;
    Ok(row.get::<_, Option<Vec<String>>>(0).unwrap_or_default())
}

pub async fn acquire(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    group: &str,
    member: &str,
    units: &[String],
    ttl: f64,
) -> CoreResult<Vec<(String, i64)>> {
    let statement = client.prepare_cached(&sql.acquire).await?;
    let rows = client
        .query(&statement, &[&group, &member, &units, &ttl])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn release(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    group: &str,
    member: &str,
    units: Option<&[String]>,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.release).await?;
    Ok(client
        .query_one(&statement, &[&group, &member, &units])
        .await?
        .get(0))
}

pub async fn leave(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    selector: &str,
    group: &str,
    member: &str,
) -> CoreResult<()> {
    let statement = client.prepare_cached(&sql.leave).await?;
    client
        .execute(&statement, &[&selector, &group, &member])
        .await?;
    Ok(())
}

/// A member's commit of `stream`'s offset (`stream: None`: of the feed's position).
pub async fn commit(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: Option<&str>,
    group: &str,
    value: i64,
    member: &str,
    generation: i64,
) -> CoreResult<bool> {
    let row = match stream {
        Some(stream) => {
            let statement = client.prepare_cached(&sql.commit_offset).await?;
            client
                .query_one(&statement, &[&stream, &group, &value, &member, &generation])
                .await
        }
        None => {
            let statement = client.prepare_cached(&sql.commit_position).await?;
            client
                .query_one(&statement, &[&group, &value, &member, &generation])
                .await
        }
    };
    Ok(row.map_err(fenced)?.get(0))
}

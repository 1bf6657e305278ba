//! The statements of the migrator. Its orchestration (order, checksums, what to report) is
//! Python's `migrator.py`; the SQL it runs, besides the migration files themselves, is here.
//! `schema` is a validated identifier, always double-quoted.

use std::time::Duration;

use tokio_postgres::Client;

use crate::errors::CoreResult;

/// `'text'` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The schema and the `schema_version` table, if missing (the only DDL before the lock).
pub fn bootstrap(schema: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";\n\
         CREATE TABLE IF NOT EXISTS \"{schema}\".schema_version (\n\
         \x20   version integer PRIMARY KEY,\n\
         \x20   description text NOT NULL,\n\
         \x20   applied_at timestamptz NOT NULL DEFAULT now(),\n\
         \x20   checksum text\n\
         );\n"
    )
}

/// The `schema_version` row of one migration, run in its transaction.
pub fn record(schema: &str, version: i64, description: &str, checksum: &str) -> String {
    format!(
        "INSERT INTO \"{schema}\".schema_version (version, description, checksum) \
         VALUES ({version}, {}, {});\n",
        literal(description),
        literal(checksum)
    )
}

/// Builds or drops the GIN index on event data. `concurrently` on a table with rows, so
/// appends go on meanwhile (it must then run alone, outside a transaction block).
pub fn event_data_index(schema: &str, wanted: bool, concurrently: bool) -> String {
    let how = if concurrently { " CONCURRENTLY" } else { "" };
    if wanted {
        format!(
            "CREATE INDEX{how} IF NOT EXISTS events_data_idx ON \"{schema}\".events \
             USING gin (data jsonb_path_ops)"
        )
    } else {
        format!("DROP INDEX{how} IF EXISTS \"{schema}\".events_data_idx")
    }
}

/// `(version, description, checksum)` of every applied migration, in version order; empty
/// when the schema or its `schema_version` table does not exist. Reads only.
pub async fn applied(
    client: &Client,
    schema: &str,
) -> CoreResult<Vec<(i64, String, Option<String>)>> {
    let table = format!("\"{schema}\".schema_version");
    let exists: Option<String> = client
        .query_one("SELECT to_regclass($1)::text", &[&table])
        .await?
        .get(0);
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!("SELECT version::int8, description, checksum FROM {table} ORDER BY version"),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// `(exists, valid, has rows)` of the GIN index and the events table: what deciding how to
/// adjust the index needs. `None` when there is no events table yet.
pub async fn event_data_index_state(
    client: &Client,
    schema: &str,
) -> CoreResult<Option<(bool, bool, bool)>> {
    let events = format!("\"{schema}\".events");
    let index = format!("\"{schema}\".events_data_idx");
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, \
                    (SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($2)), \
                    to_regclass($2) IS NOT NULL",
            &[&events, &index],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(None);
    }
    let has_rows: bool = client
        .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {events})"), &[])
        .await?
        .get(0);
    let exists: bool = row.get(2);
    let valid: Option<bool> = row.get(1);
    Ok(Some((exists, valid.unwrap_or(false), has_rows)))
}

/// Takes the session advisory lock that serializes migrators of one schema, waiting at most
/// `wait` (a `lock_timeout`, SQLSTATE 55P03 when it runs out).
pub async fn lock(client: &Client, class: i32, key: i32, wait: Duration) -> CoreResult<()> {
    let millis = wait.as_millis().clamp(1, i32::MAX as u128);
    client
        .batch_execute(&format!("SET lock_timeout = {millis}"))
        .await?;
    client
        .execute("SELECT pg_advisory_lock($1, $2)", &[&class, &key])
        .await?;
    client.batch_execute("SET lock_timeout = 0").await?;
    Ok(())
}

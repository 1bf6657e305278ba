//! Queries over events by what they are rather than where they sit: by correlation or
//! causation id, type, stream or category (a stream name prefix), time, and data
//! containment, in position order, a batch at a time. Each filter maps onto an index of
//! migration 001 (the test suite checks the plans). They are planned with their values every
//! time: a cached statement turns to a generic plan after five runs, and for these filters the
//! generic plan walks the whole feed in position order (measured: a containment query went
//! from 6 ms to 80-100 ms on 300k events from its sixth run).

use postgres_types::{ToSql, Type};

use super::pgtypes::{JsonText, Micros};
use super::read::{read_batch, Batch, Planning, Read, EVENT_COLUMNS};
use crate::errors::CoreResult;

/// Which events a query selects. Bounds: `since` inclusive, `until` exclusive (times, in
/// microseconds since the Unix epoch); `from_offset` and `until_position` inclusive,
/// `after_position` exclusive.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub stream: Option<String>,
    pub stream_prefix: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub since: Option<Micros>,
    pub until: Option<Micros>,
    pub data_contains: Option<JsonText>,
    pub from_offset: Option<i64>,
    pub until_position: Option<i64>,
    pub after_position: Option<i64>,
}

/// The smallest string above every string that starts with `prefix`, in code point order
/// (which is byte order for UTF-8, and `COLLATE "C"`): the prefix with its last character
/// raised by one. None when no such string exists (a prefix of only U+10FFFF).
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'), // over the surrogates, which no string holds
            code => char::from_u32(code),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A filter as SQL: the WHERE conditions (after the cursor's) and their parameters, which
/// are numbered from `first`.
struct Conditions {
    sql: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    /// Each parameter's type: the statement is sent unnamed with them (`query_typed`), so it
    /// is planned with its values and costs one round trip, with no statement left behind.
    types: Vec<Type>,
}

impl Conditions {
    fn push(
        &mut self,
        condition: impl FnOnce(usize) -> String,
        value: Box<dyn ToSql + Sync + Send>,
        ty: Type,
    ) {
        let number = self.params.len() + 1;
        self.sql.push(condition(number));
        self.params.push(value);
        self.types.push(ty);
    }

    fn typed(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .zip(&self.types)
            .map(|(value, ty)| (value.as_ref() as _, ty.clone()))
            .collect()
    }
}

fn conditions(filter: &EventFilter) -> Conditions {
    let mut c = Conditions {
        sql: Vec::new(),
        params: Vec::new(),
        types: Vec::new(),
    };
    let f = filter.clone();
    if let Some(stream) = f.stream {
        c.push(
            |n| format!("stream_name = ${n}"),
            Box::new(stream),
            Type::TEXT,
        );
    }
    if let Some(prefix) = f.stream_prefix {
        if let Some(upper) = prefix_upper_bound(&prefix) {
            c.push(
                |n| format!("stream_name < ${n}"),
                Box::new(upper),
                Type::TEXT,
            );
        }
        c.push(
            |n| format!("stream_name >= ${n}"),
            Box::new(prefix),
            Type::TEXT,
        );
    }
    match f.event_types {
        // One type as `=`, so the type index hands back rows in position order.
        Some(mut types) if types.len() == 1 => {
            let only = types.remove(0);
            c.push(|n| format!("event_type = ${n}"), Box::new(only), Type::TEXT);
        }
        Some(types) => c.push(
            |n| format!("event_type = ANY(${n})"),
            Box::new(types),
            Type::TEXT_ARRAY,
        ),
        None => {}
    }
    if let Some(id) = f.correlation_id {
        c.push(
            |n| format!("correlation_id = ${n}"),
            Box::new(id),
            Type::TEXT,
        );
    }
    if let Some(id) = f.causation_id {
        c.push(|n| format!("causation_id = ${n}"), Box::new(id), Type::TEXT);
    }
    if let Some(since) = f.since {
        c.push(
            |n| format!("created_at >= ${n}"),
            Box::new(since),
            Type::TIMESTAMPTZ,
        );
    }
    if let Some(until) = f.until {
        c.push(
            |n| format!("created_at < ${n}"),
            Box::new(until),
            Type::TIMESTAMPTZ,
        );
    }
    if let Some(document) = f.data_contains {
        c.push(|n| format!("data @> ${n}"), Box::new(document), Type::JSONB);
    }
    if let Some(offset) = f.from_offset {
        c.push(
            |n| format!("stream_offset >= ${n}"),
            Box::new(offset),
            Type::INT8,
        );
    }
    if let Some(position) = f.until_position {
        c.push(
            |n| format!("position <= ${n}"),
            Box::new(position),
            Type::INT8,
        );
    }
    if let Some(position) = f.after_position {
        c.push(
            |n| format!("position > ${n}"),
            Box::new(position),
            Type::INT8,
        );
    }
    c
}

/// Up to `limit` events after `after_position` that match `filter`, in position order.
pub async fn find(
    client: &deadpool_postgres::Client,
    schema: &str,
    filter: &EventFilter,
    after_position: i64,
    limit: i64,
) -> CoreResult<Batch> {
    let mut c = conditions(filter);
    let after = c.params.len() + 1;
    let limit_number = after + 1;
    c.sql.push(format!("position > ${after}"));
    c.params.push(Box::new(after_position));
    c.types.push(Type::INT8);
    c.params.push(Box::new(limit));
    c.types.push(Type::INT8);
    let selection = format!(
        "WHERE {} ORDER BY position LIMIT ${limit_number}",
        c.sql.join(" AND ")
    );
    let read = Read::new(schema, &selection);
    let params: Vec<&(dyn ToSql + Sync)> = c.params.iter().map(|p| p.as_ref() as _).collect();
    read_batch(client, &read, &params, Planning::WithValues(&c.types)).await
}

/// How many events match `filter` (what a replay reports progress against).
pub async fn count(
    client: &deadpool_postgres::Client,
    schema: &str,
    filter: &EventFilter,
) -> CoreResult<i64> {
    let c = conditions(filter);
    let mut sql = format!("SELECT count(*) FROM {schema}.events");
    if !c.sql.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&c.sql.join(" AND "));
    }
    // Planned with the values (an unnamed statement), as `find` is.
    Ok(client
        .query_typed_one(sql.as_str(), &c.typed())
        .await?
        .get(0))
}

/// The statement `find` sends for `filter` (for `EXPLAIN` in the tests of index use).
pub fn find_sql(schema: &str, filter: &EventFilter) -> String {
    let c = conditions(filter);
    let after = c.params.len() + 1;
    let mut sql = c.sql;
    sql.push(format!("position > ${after}"));
    format!(
        "SELECT {EVENT_COLUMNS} FROM {schema}.events WHERE {} ORDER BY position LIMIT ${}",
        sql.join(" AND "),
        after + 1
    )
}

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn the_upper_bound_of_a_prefix_is_just_above_everything_it_starts() {
        assert_eq!(prefix_upper_bound("order-").as_deref(), Some("order."));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        let upper = prefix_upper_bound("é").unwrap();
        for name in ["é", "éa", "é\u{10FFFF}\u{10FFFF}"] {
            assert!(name < upper.as_str());
        }
        assert!("ê" >= upper.as_str());
    }
}

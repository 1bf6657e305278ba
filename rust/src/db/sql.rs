//! Every statement a store sends, built once per store for its schema (identifiers cannot be
//! bind parameters; the schema name was validated as a plain identifier and is quoted). Each
//! module of `db/` owns its statements, next to the code that runs them; this struct only
//! gathers them. Python sends no SQL of its own: the other home of SQL is `migrations/`.

use super::{append, offsets, queue, queue_admin, read, streams};

pub struct Sql {
    pub append: append::Statements,
    pub read: read::Statements,
    pub streams: streams::Statements,
    pub offsets: offsets::Statements,
    pub queue: queue::Statements,
    pub queue_admin: queue_admin::Statements,
    pub notify_channel: String,
}

impl Sql {
    pub fn new(schema: &str) -> Self {
        let quoted = format!("\"{schema}\"");
        let notify_channel = format!("pgstreams_{schema}");
        Sql {
            append: append::Statements::new(&quoted),
            read: read::Statements::new(&quoted),
            streams: streams::Statements::new(&quoted),
            offsets: offsets::Statements::new(&quoted),
            queue: queue::Statements::new(&quoted, &notify_channel),
            queue_admin: queue_admin::Statements::new(&quoted),
            notify_channel,
        }
    }
}

/// The predicate of a queue row (alias `q`) whose last allowed delivery has expired: it can
/// never be delivered again, so it counts as a dead letter everywhere, whether or not a
/// dequeue has moved it to `dead_letter_queue` yet. Written once; the in-memory store's
/// `_Message.spent` mirrors it.
pub const SPENT: &str = "(q.lease_token IS NOT NULL AND q.visible_at <= now() \
                         AND q.delivery_attempts >= q.max_delivery_attempts)";

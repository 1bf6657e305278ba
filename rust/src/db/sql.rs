//! Every statement a store sends, built once per store for its schema (identifiers cannot be
//! bind parameters; the schema name was validated as a plain identifier and is quoted). Each
//! module of `db/` owns its statements, next to the code that runs them; this struct only
//! gathers them. Python sends no SQL of its own: the other home of SQL is `migrations/`.

use super::{
    admin, append, configuration, groups, listener, offsets, queue, queue_admin, read, recorder,
    retention, streams, transaction,
};

pub struct Sql {
    /// The schema, double-quoted, for statements built per call (`query`).
    pub schema: String,
    pub append: append::Statements,
    pub read: read::Statements,
    pub recorder: recorder::Statements,
    pub streams: streams::Statements,
    pub offsets: offsets::Statements,
    pub queue: queue::Statements,
    pub queue_admin: queue_admin::Statements,
    pub retention: retention::Statements,
    pub configuration: configuration::Statements,
    pub admin: admin::Statements,
    pub groups: groups::Statements,
    pub transaction: transaction::Statements,
    pub notify_channel: String,
}

impl Sql {
    pub fn new(schema: &str) -> Self {
        let quoted = format!("\"{schema}\"");
        let notify_channel = listener::channel(schema);
        Sql {
            append: append::Statements::new(&quoted),
            read: read::Statements::new(&quoted),
            recorder: recorder::Statements::new(&quoted),
            streams: streams::Statements::new(&quoted),
            offsets: offsets::Statements::new(&quoted),
            queue: queue::Statements::new(&quoted, &notify_channel),
            queue_admin: queue_admin::Statements::new(&quoted),
            retention: retention::Statements::new(&quoted),
            configuration: configuration::Statements::new(&quoted),
            admin: admin::Statements::new(&quoted),
            groups: groups::Statements::new(&quoted),
            transaction: transaction::Statements::new(&quoted),
            notify_channel,
            schema: quoted,
        }
    }
}

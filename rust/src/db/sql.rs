//! Every statement of the hot paths, built once per store for its schema (identifiers cannot
//! be bind parameters; the schema name was validated as a plain identifier and is quoted).

pub struct Sql {
    pub append: String,
    pub begin_append: String,
    pub copy_events: String,
    pub classify_existing: String,
    pub read_stream: String,
    pub read_all: String,
    pub stream_version: String,
    pub enqueue: String,
    pub dequeue: String,
    pub acknowledge: String,
    pub nack: String,
    pub extend_lease: String,
    pub sweep_expired: String,
    pub notify_channel: String,
}

const EVENT_COLUMNS: &str = "stream_name, stream_offset, position, event_id, event_type, data, \
                             metadata, correlation_id, causation_id, created_at";

pub const QUEUED_COLUMNS: &str = "e.id, e.stream_name, e.event_type, e.data, e.metadata, \
    e.correlation_id, e.causation_id, e.delivery_attempts, e.enqueued_at, e.consumer_id, \
    e.visible_at, e.lease_token, e.seq";

impl Sql {
    pub fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        Sql {
            append: format!(
                "SELECT outcome, first_offset, stream_version FROM {s}.append_events($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            begin_append: format!(
                "SELECT outcome, first_offset, stream_version FROM {s}.begin_append($1, $2, $3, $4)"
            ),
            copy_events: format!(
                "COPY {s}.events (stream_name, stream_offset, event_id, event_type, data, metadata, \
                 correlation_id, causation_id) FROM STDIN (FORMAT binary)"
            ),
            classify_existing: format!(
                "SELECT outcome, first_offset FROM {s}.classify_existing_events($1, $2)"
            ),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE stream_name = $1 AND stream_offset >= $2 \
                 ORDER BY stream_offset LIMIT $3"
            ),
            read_all: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            stream_version: format!(
                "SELECT coalesce((SELECT version FROM {s}.streams WHERE stream_name = $1), -1)"
            ),
            // One round trip per batch: insert in order (seq follows the input order), skip ids
            // already queued or dead-lettered, and send one NOTIFY if anything was inserted.
            enqueue: format!(
                "WITH input AS ( \
                   SELECT * FROM unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::text[]) \
                          WITH ORDINALITY AS t(id, event_type, data, metadata, correlation_id, causation_id, ord) \
                 ), settings AS (SELECT {s}.max_delivery_attempts($1) AS max_attempts), \
                 inserted AS ( \
                   INSERT INTO {s}.queue_events AS q (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, visible_at, max_delivery_attempts) \
                   SELECT i.id, $1, i.event_type, i.data, i.metadata, i.correlation_id, i.causation_id, \
                          now() + make_interval(secs => $8), settings.max_attempts \
                   FROM input i CROSS JOIN settings \
                   WHERE NOT EXISTS (SELECT 1 FROM {s}.dead_letter_queue d WHERE d.id = i.id) \
                   ORDER BY i.ord \
                   ON CONFLICT (id) DO NOTHING \
                   RETURNING 1 \
                 ) \
                 SELECT (SELECT count(*) FROM inserted), \
                        CASE WHEN $9 AND EXISTS (SELECT 1 FROM inserted) \
                             THEN pg_notify('pgstreams_{schema}', $1) END::text"
            ),
            // Acknowledges the previous batch (folded in: no separate round trip), moves messages
            // whose last delivery expired to the dead letter queue, and leases the oldest visible
            // messages, all in one statement. The first row always exists and carries how many
            // were dead-lettered, so a short batch caused by dead-lettering can be refilled.
            dequeue: format!(
                "WITH acked AS ( \
                   DELETE FROM {s}.queue_events q USING unnest($5::uuid[], $6::uuid[]) AS a(id, token) \
                   WHERE q.id = a.id AND (q.lease_token = a.token OR (a.token IS NULL AND q.lease_token IS NOT NULL)) \
                   RETURNING 1 \
                 ), picked AS ( \
                   SELECT q.id, q.delivery_attempts, q.max_delivery_attempts FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND q.visible_at <= now() AND q.id <> ALL($5::uuid[]) \
                   ORDER BY q.seq LIMIT $3 FOR UPDATE SKIP LOCKED \
                 ), dead AS ( \
                   DELETE FROM {s}.queue_events q USING picked p \
                   WHERE q.id = p.id AND p.delivery_attempts >= p.max_delivery_attempts \
                   RETURNING q.* \
                 ), moved AS ( \
                   INSERT INTO {s}.dead_letter_queue (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, delivery_attempts, enqueued_at, reason) \
                   SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, \
                          delivery_attempts, enqueued_at, 'max_deliveries' FROM dead \
                   ON CONFLICT (id) DO NOTHING RETURNING 1 \
                 ), leased AS ( \
                   UPDATE {s}.queue_events q SET delivery_attempts = q.delivery_attempts + 1, \
                          lease_token = gen_random_uuid(), consumer_id = $2, leased_at = now(), \
                          visible_at = now() + make_interval(secs => $4) \
                   FROM picked p WHERE q.id = p.id AND p.delivery_attempts < p.max_delivery_attempts \
                   RETURNING q.* \
                 ) \
                 SELECT counts.dead_lettered, counts.acked, {cols} \
                 FROM (SELECT (SELECT count(*) FROM dead) AS dead_lettered, (SELECT count(*) FROM acked) AS acked) counts \
                 LEFT JOIN leased e ON true ORDER BY e.seq",
                cols = QUEUED_COLUMNS
            ),
            acknowledge: format!(
                "WITH acked AS ( \
                   DELETE FROM {s}.queue_events q USING unnest($1::uuid[], $2::uuid[]) AS a(id, token) \
                   WHERE q.id = a.id AND (q.lease_token = a.token OR (a.token IS NULL AND q.lease_token IS NOT NULL)) \
                   RETURNING 1 \
                 ) SELECT count(*) FROM acked"
            ),
            // requeue: back in its place after the delay (argument, else the stream's retry
            // backoff, else none); not requeued, or out of deliveries: to the dead letter queue.
            nack: format!(
                "WITH target AS ( \
                   SELECT q.id, q.stream_name, q.delivery_attempts, q.max_delivery_attempts FROM {s}.queue_events q \
                   WHERE q.id = $1 AND (q.lease_token = $2 OR ($2::uuid IS NULL AND q.lease_token IS NOT NULL)) \
                   FOR UPDATE \
                 ), dead AS ( \
                   DELETE FROM {s}.queue_events q USING target t \
                   WHERE q.id = t.id AND (NOT $3 OR t.delivery_attempts >= t.max_delivery_attempts) \
                   RETURNING q.* \
                 ), moved AS ( \
                   INSERT INTO {s}.dead_letter_queue (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, delivery_attempts, enqueued_at, reason) \
                   SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, \
                          delivery_attempts, enqueued_at, CASE WHEN $3 THEN 'max_deliveries' ELSE 'nacked' END FROM dead \
                   ON CONFLICT (id) DO NOTHING RETURNING 1 \
                 ), requeued AS ( \
                   UPDATE {s}.queue_events q SET lease_token = NULL, consumer_id = NULL, leased_at = NULL, \
                          visible_at = now() + coalesce( \
                            make_interval(secs => $4), \
                            (SELECT CASE WHEN c.enable_exponential_backoff \
                                         THEN least(c.retry_delay * power(c.backoff_multiplier, greatest(t.delivery_attempts - 1, 0)), \
                                                    coalesce(c.max_retry_delay, c.retry_delay * power(c.backoff_multiplier, greatest(t.delivery_attempts - 1, 0)))) \
                                         ELSE c.retry_delay END \
                             FROM {s}.stream_configurations c WHERE c.stream_name = t.stream_name), \
                            interval '0') \
                   FROM target t WHERE q.id = t.id AND $3 AND t.delivery_attempts < t.max_delivery_attempts \
                   RETURNING 1 \
                 ) SELECT (SELECT count(*) FROM dead) + (SELECT count(*) FROM requeued)"
            ),
            extend_lease: format!(
                "UPDATE {s}.queue_events q SET visible_at = now() + make_interval(secs => $3) \
                 WHERE q.id = $1 AND (q.lease_token = $2 OR ($2::uuid IS NULL AND q.lease_token IS NOT NULL))"
            ),
            sweep_expired: format!(
                "WITH dead AS ( \
                   DELETE FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND q.lease_token IS NOT NULL AND q.visible_at <= now() \
                     AND q.delivery_attempts >= q.max_delivery_attempts \
                   RETURNING q.* \
                 ), moved AS ( \
                   INSERT INTO {s}.dead_letter_queue (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, delivery_attempts, enqueued_at, reason) \
                   SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, \
                          delivery_attempts, enqueued_at, 'max_deliveries' FROM dead \
                   ON CONFLICT (id) DO NOTHING RETURNING 1 \
                 ) SELECT count(*) FROM moved"
            ),
            notify_channel: format!("pgstreams_{schema}"),
        }
    }
}

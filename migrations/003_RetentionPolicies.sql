-- pgstreams 003: retention policies for persistent streams, and stream tombstones.
-- stream_name '*' is the default policy for streams without their own. An event goes when
-- either limit is exceeded; a stream configuration's retention (004) overrides both. The
-- rules are applied in bounded batches by the Rust core (rust/src/db/retention.rs).

CREATE TABLE {schema}.retention_policies (
    stream_name text PRIMARY KEY,
    max_age interval,
    max_event_count bigint CHECK (max_event_count IS NULL OR max_event_count >= 0),
    enabled boolean NOT NULL DEFAULT true,
    -- Keep the events a consumer group (a row of consumer_offsets) has not consumed yet.
    respect_consumer_groups boolean NOT NULL DEFAULT false,
    -- Dead letters of the queue of the same name (every queue, for '*') older than this go.
    max_dead_letter_age interval,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A deleted stream keeps its row (so offsets and ids are never reused: the next append
-- continues after its version) with the version it had when deleted. It is live again once
-- an append moves the version past it; comparing versions, not times, is exact even for an
-- append that waited on the row lock while the deletion committed.
ALTER TABLE {schema}.streams ADD COLUMN deleted_version bigint;

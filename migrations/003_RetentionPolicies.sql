-- pgstreams 003: retention policies for persistent streams. stream_name '*' is the default
-- policy for streams without their own. An event goes when either limit is exceeded.

CREATE TABLE {schema}.retention_policies (
    stream_name text PRIMARY KEY,
    max_age interval,
    max_event_count bigint CHECK (max_event_count IS NULL OR max_event_count >= 0),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- pgstreams 004: per-stream configuration. The parts the queue reads on every nack or
-- enqueue (maximum deliveries, retry delay and backoff) are columns; the rest of the seed's
-- configuration (lifecycle, performance, access control, partitioning) is kept as JSON.

CREATE TABLE {schema}.stream_configurations (
    stream_name text PRIMARY KEY,
    description text,
    tags jsonb NOT NULL DEFAULT '{}'::jsonb,
    max_delivery_attempts integer NOT NULL DEFAULT 5 CHECK (max_delivery_attempts >= 1),
    retry_delay interval,
    enable_exponential_backoff boolean NOT NULL DEFAULT false,
    backoff_multiplier double precision NOT NULL DEFAULT 2.0 CHECK (backoff_multiplier >= 1),
    max_retry_delay interval,
    dead_letter_enabled boolean NOT NULL DEFAULT true,
    retention jsonb NOT NULL DEFAULT '{}'::jsonb,
    lifecycle jsonb NOT NULL DEFAULT '{}'::jsonb,
    performance jsonb NOT NULL DEFAULT '{}'::jsonb,
    access_control jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The one place the queue reads a stream's maximum deliveries from.
CREATE FUNCTION {schema}.max_delivery_attempts(p_stream text) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT c.max_delivery_attempts FROM {schema}.stream_configurations c
         WHERE c.stream_name = p_stream),
        5)
$$;

-- A nacked message's delay when the nack gives none: the stream's retry delay, growing by
-- the backoff multiplier with each delivery when exponential backoff is on, at most
-- max_retry_delay. NULL (no delay) for a stream without configuration.
CREATE FUNCTION {schema}.retry_delay(p_stream text, p_delivery_attempts integer) RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN c.enable_exponential_backoff
                THEN least(c.retry_delay * power(c.backoff_multiplier, greatest(p_delivery_attempts - 1, 0)),
                           coalesce(c.max_retry_delay,
                                    c.retry_delay * power(c.backoff_multiplier, greatest(p_delivery_attempts - 1, 0))))
                ELSE c.retry_delay END
    FROM {schema}.stream_configurations c WHERE c.stream_name = p_stream
$$;

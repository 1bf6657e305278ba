-- pgstreams 004: per-stream configuration. The parts the queue reads on every nack or
-- enqueue (maximum deliveries, retry delay and backoff, dead letters on or off) are columns;
-- the rest of the seed's configuration (retention, lifecycle, performance, access control) is
-- kept as JSON documents whose keys are the fields of pgstreams.configuration's dataclasses
-- (durations in seconds). What pgstreams enforces is listed there.

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
    dead_letter_stream_name text,
    retention jsonb NOT NULL DEFAULT '{}'::jsonb,
    lifecycle jsonb NOT NULL DEFAULT '{}'::jsonb,
    performance jsonb NOT NULL DEFAULT '{}'::jsonb,
    access_control jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The one place the queue reads a stream's maximum deliveries from. Dead letters disabled
-- means no delivery limit: the largest integer, which a delivery count never reaches.
CREATE FUNCTION {schema}.max_delivery_attempts(p_stream text) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT CASE WHEN c.dead_letter_enabled THEN c.max_delivery_attempts ELSE 2147483647 END
         FROM {schema}.stream_configurations c WHERE c.stream_name = p_stream),
        5)
$$;

-- Does nack(requeue = false) make a dead letter of a message of this stream (else it deletes it)?
CREATE FUNCTION {schema}.dead_letters_enabled(p_stream text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT c.dead_letter_enabled FROM {schema}.stream_configurations c
         WHERE c.stream_name = p_stream),
        true)
$$;

-- p_base * p_multiplier ^ (p_attempts - 1) seconds, at most p_cap (NULL: 100 years). The
-- exponent is clamped first to the one that reaches the cap, so no multiplier or attempt count
-- can overflow: with the cap at 100 years and a base of at least a microsecond, that exponent
-- is at most ln(3.2e15) / ln(multiplier), about 36 / ln(multiplier). (The in-memory twin is
-- pgstreams.configuration.backoff_seconds.)
CREATE FUNCTION {schema}.backoff_seconds(
    p_base float8, p_multiplier float8, p_cap float8, p_attempts integer) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
               WHEN p_base <= 0 THEN 0
               WHEN p_multiplier <= 1 OR p_attempts <= 1 THEN least(p_base, cap)
               ELSE least(p_base * power(p_multiplier,
                                         least(p_attempts - 1,
                                               greatest(0, ceil(ln(cap / p_base) / ln(p_multiplier))))),
                          cap)
           END
    FROM (SELECT coalesce(p_cap, 3155760000) AS cap) c
$$;

-- The delay before a message is delivered again after delivery number p_delivery_attempts
-- failed (a nack without a delay, or an expired lease): the stream's retry delay, growing by
-- the backoff multiplier with each delivery when exponential backoff is on, at most
-- max_retry_delay. NULL (no delay) for a stream without a retry delay.
CREATE FUNCTION {schema}.retry_delay(p_stream text, p_delivery_attempts integer) RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT make_interval(secs => {schema}.backoff_seconds(
               extract(epoch FROM c.retry_delay)::float8,
               CASE WHEN c.enable_exponential_backoff THEN c.backoff_multiplier ELSE 1 END,
               extract(epoch FROM c.max_retry_delay)::float8,
               p_delivery_attempts))
    FROM {schema}.stream_configurations c
    WHERE c.stream_name = p_stream AND c.retry_delay IS NOT NULL
$$;

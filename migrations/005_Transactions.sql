-- pgstreams 005: appends report the global positions they drew; the functions a
-- transaction (store.transaction()) flushes its staged work through at commit; and a
-- notification for readers following the global feed.
--
-- A transaction's staged operations are sent together with COMMIT in one round trip, so a
-- failed expectation cannot be a row the client reads before deciding to commit: these
-- functions RAISE instead, which aborts the transaction (COMMIT then rolls it back). The
-- SQLSTATEs are pgstreams' own (class PS); the client turns them into its errors:
--   PS409  an expectation failed (a stream's expected version, a consumer group's expected
--          committed offset or position); DETAIL is JSON {"stream", "expected", "actual"}
--   PS422  an offset or position past the end of its stream or feed

-- The positions of stored events, in the order of p_ids (for an append that turned out to be a
-- retry: the positions its events were first given).
CREATE FUNCTION {schema}.positions_of(p_ids uuid[]) RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(e.position ORDER BY w.ord)
    FROM unnest(p_ids) WITH ORDINALITY AS w(id, ord)
    JOIN {schema}.events e ON e.event_id = w.id
$$;

-- append_events and append_many of migration 001, now also returning the positions drawn (one
-- per event, in event order). The insert is the same statement; RETURNING costs nothing.
DROP FUNCTION {schema}.append_many(text[], bigint[], integer[], uuid[], text[], jsonb[], jsonb[],
                                   text[], text[], integer[]);
DROP FUNCTION {schema}.append_events(text, bigint, uuid[], text[], jsonb[], jsonb[], text[],
                                     text[], integer[]);

CREATE FUNCTION {schema}.append_events(
    p_stream text,
    p_expected_version bigint,
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    p_correlation_ids text[],
    p_causation_ids text[],
    p_versions integer[] DEFAULT NULL)
RETURNS TABLE (outcome text, first_offset bigint, stream_version bigint, positions bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_start record;
    v_positions bigint[];
BEGIN
    SELECT * INTO v_start
    FROM {schema}.begin_append(p_stream, p_expected_version, cardinality(p_ids), p_ids);
    IF v_start.outcome = 'ok' THEN
        WITH inserted AS (
            INSERT INTO {schema}.events
                (stream_name, stream_offset, event_id, event_type, data, metadata, correlation_id,
                 causation_id, version)
            SELECT p_stream, v_start.first_offset - 1 + e.ord, e.id, e.event_type, e.data,
                   e.metadata, e.correlation_id, e.causation_id, coalesce(e.version, 1)
            FROM unnest(p_ids, p_types, p_data, p_metadata, p_correlation_ids, p_causation_ids,
                        p_versions)
                 WITH ORDINALITY AS e(id, event_type, data, metadata, correlation_id,
                                      causation_id, version, ord)
            ORDER BY e.ord
            RETURNING position)
        SELECT array_agg(position ORDER BY position) INTO v_positions FROM inserted;
    ELSIF v_start.outcome = 'retry' THEN
        v_positions := {schema}.positions_of(p_ids);
    END IF;
    RETURN QUERY SELECT v_start.outcome, v_start.first_offset, v_start.stream_version, v_positions;
END $$;

-- Group commit (see migration 001), with each call's positions.
CREATE FUNCTION {schema}.append_many(
    p_streams text[],
    p_expected bigint[],
    p_counts integer[],
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    p_correlation_ids text[],
    p_causation_ids text[],
    p_versions integer[])
RETURNS TABLE (call integer, outcome text, first_offset bigint, stream_version bigint,
               positions bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_start integer := 1;
    v_end integer;
    v_call integer;
    v_ids uuid[];
    v_result record;
BEGIN
    INSERT INTO {schema}.streams (stream_name, version)
    SELECT DISTINCT s, -1 FROM unnest(p_streams) AS s ORDER BY s
    ON CONFLICT (stream_name) DO NOTHING;
    PERFORM 1 FROM {schema}.streams s
    WHERE s.stream_name = ANY(p_streams) ORDER BY s.stream_name FOR UPDATE;
    FOR v_call IN 1 .. cardinality(p_streams) LOOP
        v_end := v_start + p_counts[v_call] - 1;
        v_ids := p_ids[v_start:v_end];
        BEGIN
            SELECT * INTO v_result FROM {schema}.append_events(
                p_streams[v_call], p_expected[v_call], v_ids, p_types[v_start:v_end],
                p_data[v_start:v_end], p_metadata[v_start:v_end],
                p_correlation_ids[v_start:v_end], p_causation_ids[v_start:v_end],
                p_versions[v_start:v_end]);
            RETURN QUERY SELECT v_call, v_result.outcome, v_result.first_offset,
                                v_result.stream_version, v_result.positions;
        EXCEPTION WHEN unique_violation THEN
            -- An id stored by another call: a retry of one that committed, or a duplicate.
            SELECT * INTO v_result FROM {schema}.classify_existing_events(p_streams[v_call], v_ids);
            IF v_result.outcome = 'retry' THEN
                RETURN QUERY SELECT v_call, 'retry'::text, v_result.first_offset, NULL::bigint,
                                    {schema}.positions_of(v_ids);
            ELSE
                RETURN QUERY SELECT v_call, 'duplicate'::text, NULL::bigint, NULL::bigint,
                                    NULL::bigint[];
            END IF;
        END;
        v_start := v_end + 1;
    END LOOP;
END $$;

-- The appends of a transaction, all or nothing, at its commit: p_counts events per call, their
-- columns concatenated in call order. The streams' rows are created if missing and locked
-- first, in name order (as append_many does), so two transactions appending to the same
-- streams in any order cannot deadlock; then each call's expected version is checked in call
-- order (a stream appended to twice sees its first call's events); then the global append
-- lock is taken, last, and the events are inserted in call order, so their positions follow
-- the calls. A failed expectation raises PS409; an event id already stored raises
-- unique_violation (no retry recognition inside a transaction: the caller's own writes may
-- depend on the append being new).
-- Returns each call's first offset and every event's position, in event order.
CREATE FUNCTION {schema}.append_in_transaction(
    p_streams text[],
    p_expected bigint[],
    p_counts integer[],
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    p_correlation_ids text[],
    p_causation_ids text[],
    p_versions integer[])
RETURNS TABLE (first_offsets bigint[], positions bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_call integer;
    v_count integer;
    v_version bigint;
    v_first_offsets bigint[] := '{}';
    v_event_streams text[] := '{}';
    v_event_offsets bigint[] := '{}';
    v_positions bigint[];
BEGIN
    INSERT INTO {schema}.streams (stream_name, version)
    SELECT DISTINCT s, -1 FROM unnest(p_streams) AS s ORDER BY s
    ON CONFLICT (stream_name) DO NOTHING;
    PERFORM 1 FROM {schema}.streams s
    WHERE s.stream_name = ANY(p_streams) ORDER BY s.stream_name FOR UPDATE;
    FOR v_call IN 1 .. cardinality(p_streams) LOOP
        v_count := p_counts[v_call];
        UPDATE {schema}.streams SET version = version + v_count, updated_at = now()
        WHERE stream_name = p_streams[v_call]
        RETURNING version - v_count INTO v_version;
        IF p_expected[v_call] IS NOT NULL AND p_expected[v_call] <> v_version THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PS409',
                MESSAGE = format('stream %s: expected version %s, but the stream is at version %s; '
                                 'nothing in the transaction was written',
                                 quote_literal(p_streams[v_call]), p_expected[v_call], v_version),
                DETAIL = json_build_object('stream', p_streams[v_call],
                                           'expected', p_expected[v_call],
                                           'actual', v_version)::text;
        END IF;
        v_first_offsets := v_first_offsets || (v_version + 1);
        v_event_streams := v_event_streams || array_fill(p_streams[v_call], ARRAY[v_count]);
        v_event_offsets := v_event_offsets
            || ARRAY(SELECT generate_series(v_version + 1, v_version + v_count));
    END LOOP;

    PERFORM pg_advisory_xact_lock({append_lock_key});
    WITH inserted AS (
        INSERT INTO {schema}.events
            (stream_name, stream_offset, event_id, event_type, data, metadata, correlation_id,
             causation_id, version)
        SELECT e.stream_name, e.stream_offset, e.id, e.event_type, e.data, e.metadata,
               e.correlation_id, e.causation_id, coalesce(e.version, 1)
        FROM unnest(v_event_streams, v_event_offsets, p_ids, p_types, p_data, p_metadata,
                    p_correlation_ids, p_causation_ids, p_versions)
             WITH ORDINALITY AS e(stream_name, stream_offset, id, event_type, data, metadata,
                                  correlation_id, causation_id, version, ord)
        ORDER BY e.ord
        RETURNING position)
    SELECT array_agg(position ORDER BY position) INTO v_positions FROM inserted;
    RETURN QUERY SELECT v_first_offsets, v_positions;
END $$;

-- commit_offset and commit_position for a transaction: the same rules, but a failed
-- expectation or a value past the end raises (see the top of this file) instead of being an
-- answer the client would have to read before committing. Returns whether it moved the group
-- (false: behind what is committed, a no-op).
CREATE FUNCTION {schema}.commit_offset_in_transaction(
    p_stream text, p_group text, p_offset bigint, p_check_expected boolean, p_expected bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    SELECT * INTO v FROM {schema}.commit_offset(p_stream, p_group, p_offset, p_check_expected,
                                                p_expected, false);
    IF v.outcome = 'conflict' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PS409',
            MESSAGE = format('consumer group %s on stream %s: expected committed offset %s, but it '
                             'is %s; nothing in the transaction was written',
                             quote_literal(p_group), quote_literal(p_stream),
                             coalesce(p_expected::text, 'None'), coalesce(v.committed::text, 'None')),
            DETAIL = json_build_object('stream', p_stream, 'expected', p_expected,
                                       'actual', v.committed)::text;
    ELSIF v.outcome = 'past_end' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PS422',
            MESSAGE = format('consumer group %s: offset %s is past the end of stream %s (its next '
                             'offset is %s); nothing in the transaction was written',
                             quote_literal(p_group), p_offset, quote_literal(p_stream),
                             v.next_offset);
    END IF;
    RETURN v.outcome = 'committed';
END $$;

CREATE FUNCTION {schema}.commit_position_in_transaction(
    p_group text, p_position bigint, p_check_expected boolean, p_expected bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    SELECT * INTO v FROM {schema}.commit_position(p_group, p_position, p_check_expected,
                                                  p_expected);
    IF v.outcome = 'conflict' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PS409',
            MESSAGE = format('consumer group %s on the global feed: expected committed position '
                             '%s, but it is %s; nothing in the transaction was written',
                             quote_literal(p_group), coalesce(p_expected::text, 'None'),
                             coalesce(v.committed::text, 'None')),
            DETAIL = json_build_object('stream', NULL, 'expected', p_expected,
                                       'actual', v.committed)::text;
    ELSIF v.outcome = 'past_end' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PS422',
            MESSAGE = format('consumer group %s: position %s is past the end of the global feed '
                             '(the head is %s); nothing in the transaction was written',
                             quote_literal(p_group), p_position, v.head);
    END IF;
    RETURN v.outcome = 'committed';
END $$;

-- Readers following the global feed (read_all(follow=True)) wake on a notification on the
-- schema's channel ({notify_channel}: db::listener::channel in the Rust core) with payload 'f:'.
-- A statement trigger sends it for every insert into events, whoever inserts (pgstreams' own
-- appends, its COPY, a transaction, another tool); PostgreSQL folds identical notifications
-- of one transaction into one and delivers it at commit, so it is one per transaction.
CREATE FUNCTION {schema}.notify_feed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{notify_channel}', 'f:');
    RETURN NULL;
END $$;

CREATE TRIGGER events_notify_feed AFTER INSERT ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_feed();

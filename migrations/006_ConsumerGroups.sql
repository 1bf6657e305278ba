-- pgstreams 006: consumer group membership (store.subscribe). See pgstreams/consumers.py for
-- the design; in short:
--
-- * Members register in consumer_registrations (the seed's table; stream_name holds the
--   subscription's selector key) and heartbeat. A member whose heartbeat is older than its
--   session timeout is removed by whichever member heartbeats next: no daemon needed.
-- * The unit of work is a stream (or, for a subscription to the global feed, the feed as a
--   whole: unit ''). A member works on a unit only while it holds the unit's lease
--   (consumer_leases), which is exclusive and expires unless renewed by the holder's
--   heartbeats; so two live members never both work on one unit.
-- * Every change of a unit's holder increments the lease's generation, the fencing token: a
--   commit carries the holder's generation and is refused (SQLSTATE PS410) unless that member
--   still holds the unit under that generation. An evicted member's late commit therefore
--   moves nothing.

CREATE TABLE {schema}.consumer_leases (
    consumer_group text COLLATE "C" NOT NULL,
    unit text COLLATE "C" NOT NULL,
    holder text NOT NULL,
    generation bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (consumer_group, unit)
);

-- A member's heartbeat: records it, removes the members of the group whose heartbeats are
-- older than their session timeout (and frees their leases), and returns the live members of
-- the group on this selector, in id order (the caller balances its units over them).
CREATE FUNCTION {schema}.consumer_heartbeat(
    p_selector text, p_group text, p_member text, p_session_timeout double precision)
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_members text[];
BEGIN
    WITH gone AS (
        DELETE FROM {schema}.consumer_registrations r
        WHERE r.consumer_group = p_group AND r.last_heartbeat + r.session_timeout < now()
          AND NOT (r.stream_name = p_selector AND r.consumer_id = p_member)
        RETURNING r.consumer_id)
    DELETE FROM {schema}.consumer_leases l
    USING gone WHERE l.consumer_group = p_group AND l.holder = gone.consumer_id;

    INSERT INTO {schema}.consumer_registrations AS r
        (stream_name, consumer_group, consumer_id, session_timeout)
    VALUES (p_selector, p_group, p_member, make_interval(secs => p_session_timeout))
    ON CONFLICT (stream_name, consumer_group, consumer_id) DO UPDATE
        SET last_heartbeat = now(), session_timeout = excluded.session_timeout;

    SELECT array_agg(r.consumer_id ORDER BY r.consumer_id) INTO v_members
    FROM {schema}.consumer_registrations r
    WHERE r.stream_name = p_selector AND r.consumer_group = p_group;
    RETURN v_members;
END $$;

-- Takes or renews the leases of p_units (those free, expired, or already this member's) for
-- p_ttl seconds; returns each unit now held with its generation. A unit that changes holder
-- gets generation + 1; a renewal keeps it.
CREATE FUNCTION {schema}.consumer_acquire(
    p_group text, p_member text, p_units text[], p_ttl double precision)
RETURNS TABLE (unit text, generation bigint)
LANGUAGE sql AS $$
    INSERT INTO {schema}.consumer_leases AS l (consumer_group, unit, holder, generation, expires_at)
    SELECT p_group, u, p_member, 1, now() + make_interval(secs => p_ttl)
    FROM unnest(p_units) AS u ORDER BY u
    ON CONFLICT (consumer_group, unit) DO UPDATE
        SET holder = excluded.holder,
            generation = CASE WHEN l.holder = excluded.holder THEN l.generation
                              ELSE l.generation + 1 END,
            expires_at = excluded.expires_at
        WHERE l.holder = excluded.holder OR l.expires_at < now()
    RETURNING l.unit, l.generation
$$;

-- Gives up this member's leases of p_units (all of them when NULL).
CREATE FUNCTION {schema}.consumer_release(p_group text, p_member text, p_units text[])
RETURNS bigint
LANGUAGE sql AS $$
    WITH released AS (
        DELETE FROM {schema}.consumer_leases l
        WHERE l.consumer_group = p_group AND l.holder = p_member
          AND (p_units IS NULL OR l.unit = ANY(p_units))
        RETURNING 1)
    SELECT count(*) FROM released
$$;

-- Leaves the group: the member's leases and registration go.
CREATE FUNCTION {schema}.consumer_leave(p_selector text, p_group text, p_member text)
RETURNS void
LANGUAGE sql AS $$
    DELETE FROM {schema}.consumer_leases WHERE consumer_group = p_group AND holder = p_member;
    DELETE FROM {schema}.consumer_registrations
    WHERE stream_name = p_selector AND consumer_group = p_group AND consumer_id = p_member;
$$;

-- Raises PS410 unless p_member holds p_unit of p_group under p_generation (locking the lease
-- row until the caller's transaction ends, so the holder cannot change before its commit).
CREATE FUNCTION {schema}.consumer_check_fence(
    p_group text, p_unit text, p_member text, p_generation bigint)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    SELECT l.holder, l.generation INTO v FROM {schema}.consumer_leases l
    WHERE l.consumer_group = p_group AND l.unit = p_unit FOR UPDATE;
    IF NOT FOUND OR v.holder <> p_member OR v.generation <> p_generation THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PS410',
            MESSAGE = format('consumer %s of group %s no longer holds %s (generation %s; now %s '
                             'of generation %s): it was evicted or the group rebalanced, and its '
                             'commit was refused',
                             quote_literal(p_member), quote_literal(p_group),
                             CASE WHEN p_unit = '' THEN 'the global feed'
                                  ELSE 'stream ' || quote_literal(p_unit) END,
                             p_generation, coalesce(quote_literal(v.holder), 'nobody'),
                             coalesce(v.generation::text, '-'));
    END IF;
END $$;

-- commit_offset / commit_position for a group member: fenced, then forward only (a lower value
-- is a no-op, false). The lease row stays locked to the end of the statement's transaction.
CREATE FUNCTION {schema}.commit_offset_as_member(
    p_stream text, p_group text, p_offset bigint, p_member text, p_generation bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    PERFORM {schema}.consumer_check_fence(p_group, p_stream, p_member, p_generation);
    SELECT * INTO v FROM {schema}.commit_offset(p_stream, p_group, p_offset, false, NULL, false);
    RETURN v.outcome = 'committed';
END $$;

CREATE FUNCTION {schema}.commit_position_as_member(
    p_group text, p_position bigint, p_member text, p_generation bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    PERFORM {schema}.consumer_check_fence(p_group, '', p_member, p_generation);
    SELECT * INTO v FROM {schema}.commit_position(p_group, p_position, false, NULL);
    RETURN v.outcome = 'committed';
END $$;

-- The Trigger Mesh's durable events and the hash-chained immutable log.
--
-- Requests never touch the chain: they commit their events together with a
-- `log_outbox` row (no sequence number yet). One sequencer moves outbox rows into
-- `immutable_log` in batches. The chain itself is kept by Postgres: a BEFORE INSERT
-- trigger assigns seq, prev_hash and entry_hash under a transaction-scoped advisory
-- lock, so no writer - however buggy or concurrent - can fork or break it, and the
-- canonical encoding lives in exactly one place (grace_log_entry_hash below).

CREATE TABLE immutable_log (
    seq          bigint PRIMARY KEY CHECK (seq >= 1),
    recorded_at  timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    resource     text NOT NULL,
    subsystem    text NOT NULL,
    -- Canonical JSON text, hashed byte for byte (jsonb would re-render it).
    payload      text NOT NULL CHECK (payload::jsonb IS NOT NULL),
    result       text NOT NULL,
    prev_hash    text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    entry_hash   text NOT NULL UNIQUE CHECK (entry_hash ~ '^[0-9a-f]{64}$')
);

-- One field of the canonical encoding: its UTF-8 byte length, ':', the bytes, ','.
-- Length prefixes make the concatenation unambiguous whatever the fields contain.
CREATE FUNCTION grace_log_field(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT octet_length(value)::text || ':' || value || ',' $$;

-- entry_hash = lower-hex SHA-256 of the canonical encoding of, in order:
-- seq, recorded_at (microseconds since the Unix epoch), actor, action, resource,
-- subsystem, payload, result, prev_hash. The first entry's prev_hash is 64 zeros.
CREATE FUNCTION grace_log_entry_hash(
    seq bigint, recorded_at timestamptz, actor text, action text, resource text,
    subsystem text, payload text, result text, prev_hash text
) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
        SELECT encode(sha256(convert_to(
            grace_log_field(seq::text)
            || grace_log_field((extract(epoch FROM recorded_at) * 1000000)::bigint::text)
            || grace_log_field(actor)
            || grace_log_field(action)
            || grace_log_field(resource)
            || grace_log_field(subsystem)
            || grace_log_field(payload)
            || grace_log_field(result)
            || grace_log_field(prev_hash),
            'UTF8')), 'hex')
    $$;

-- Chains every new entry onto the tail. The advisory lock serializes appenders
-- until commit (the "single global hash chain"); the seq primary key would reject
-- a fork even without it.
CREATE FUNCTION immutable_log_chain() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        tail immutable_log%ROWTYPE;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('grace.immutable_log.chain'));
        SELECT * INTO tail FROM immutable_log ORDER BY seq DESC LIMIT 1;
        NEW.seq := coalesce(tail.seq, 0) + 1;
        NEW.prev_hash := coalesce(tail.entry_hash, repeat('0', 64));
        NEW.recorded_at := clock_timestamp();
        NEW.entry_hash := grace_log_entry_hash(NEW.seq, NEW.recorded_at, NEW.actor, NEW.action,
            NEW.resource, NEW.subsystem, NEW.payload, NEW.result, NEW.prev_hash);
        RETURN NEW;
    END
    $$;

CREATE TRIGGER immutable_log_chain
    BEFORE INSERT ON immutable_log
    FOR EACH ROW EXECUTE FUNCTION immutable_log_chain();

-- Append-only: history is never rewritten, not even by the application.
CREATE FUNCTION immutable_log_reject_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        RAISE EXCEPTION 'immutable_log is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$;

CREATE TRIGGER immutable_log_append_only
    BEFORE UPDATE OR DELETE ON immutable_log
    FOR EACH ROW EXECUTE FUNCTION immutable_log_reject_change();

CREATE TRIGGER immutable_log_no_truncate
    BEFORE TRUNCATE ON immutable_log
    FOR EACH STATEMENT EXECUTE FUNCTION immutable_log_reject_change();

CREATE TABLE action_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    mission_id   uuid REFERENCES missions (id),
    contract_id  uuid REFERENCES action_contracts (id),
    approval_id  uuid REFERENCES approval_requests (id),
    payload      jsonb NOT NULL DEFAULT '{}',
    -- NULL until the sequencer has chained the event's log entry (the log lag).
    log_seq      bigint UNIQUE REFERENCES immutable_log (seq),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX action_events_mission_id_idx ON action_events (mission_id);
CREATE INDEX action_events_contract_id_idx ON action_events (contract_id);
CREATE INDEX action_events_approval_id_idx ON action_events (approval_id);

-- Log entries committed by requests and waiting for the sequencer. A row leaves
-- the outbox in the same transaction that appends it to the chain.
CREATE TABLE log_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint UNIQUE REFERENCES action_events (id),
    actor       text NOT NULL,
    action      text NOT NULL,
    resource    text NOT NULL,
    subsystem   text NOT NULL,
    payload     text NOT NULL CHECK (payload::jsonb IS NOT NULL),
    result      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

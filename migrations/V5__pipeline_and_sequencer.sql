-- What the backend needs beyond the data model's tables.

-- A contract's terms are hashed when it is written; the executor recomputes the
-- hash before acting, so an approved contract provably executes as it was
-- created - never rebuilt, never edited in between (C4).
ALTER TABLE action_contracts ADD COLUMN contract_digest text NOT NULL DEFAULT ''
    CHECK (contract_digest = '' OR contract_digest ~ '^[0-9a-f]{64}$');
ALTER TABLE action_contracts ALTER COLUMN contract_digest DROP DEFAULT;

-- Moves up to batch_size outbox entries onto the chain, oldest first, links each
-- event to its log entry, and reports how many it moved and the seq range they
-- got. Set-based, one round trip per batch. It takes the chain's lock first, so
-- the seqs the chain trigger assigns are exactly tail+1.. in outbox order, which
-- is how events are linked; a mismatch (impossible while the lock holds) aborts
-- the batch rather than link an event to another entry. SKIP LOCKED lets a
-- second sequencer (a replica mid-failover) pass by instead of waiting.
CREATE FUNCTION grace_sequence_outbox(batch_size integer)
    RETURNS TABLE (sequenced integer, first_seq bigint, last_seq bigint)
    LANGUAGE plpgsql
    AS $$
    DECLARE
        tail bigint;
        mislinked integer;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtext('grace.immutable_log.chain'));
        SELECT coalesce(max(seq), 0) INTO tail FROM immutable_log;
        WITH batch AS (
            DELETE FROM log_outbox
             WHERE id IN (SELECT id FROM log_outbox ORDER BY id LIMIT batch_size FOR UPDATE SKIP LOCKED)
            RETURNING *),
        ordered AS (
            SELECT batch.*, tail + row_number() OVER (ORDER BY id) AS seq FROM batch),
        appended AS (
            INSERT INTO immutable_log (actor, action, resource, subsystem, payload, result)
            SELECT actor, action, resource, subsystem, payload, result FROM ordered ORDER BY seq
            RETURNING seq, action, payload),
        linked AS (
            UPDATE action_events e SET log_seq = o.seq FROM ordered o WHERE e.id = o.event_id)
        SELECT count(*)::integer, min(a.seq), max(a.seq),
               count(*) FILTER (WHERE o.seq IS NULL OR o.action <> a.action OR o.payload <> a.payload)::integer
          INTO sequenced, first_seq, last_seq, mislinked
          FROM appended a LEFT JOIN ordered o ON o.seq = a.seq;
        IF mislinked > 0 THEN
            RAISE EXCEPTION 'sequencer: % log entries did not get the seq their events were linked to', mislinked;
        END IF;
        RETURN NEXT;
    END
    $$;

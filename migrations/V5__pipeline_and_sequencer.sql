-- What the backend needs beyond the data model's tables.

-- A contract's terms are hashed when it is written; the executor recomputes the
-- hash before acting, so an approved contract provably executes as it was
-- created - never rebuilt, never edited in between (C4).
ALTER TABLE action_contracts ADD COLUMN contract_digest text NOT NULL DEFAULT ''
    CHECK (contract_digest = '' OR contract_digest ~ '^[0-9a-f]{64}$');
ALTER TABLE action_contracts ALTER COLUMN contract_digest DROP DEFAULT;

-- Moves up to batch_size outbox entries onto the chain, oldest first, links each
-- event to its log entry, and reports how many it moved and the seq range they
-- got. One round trip per batch; the chain trigger serializes appenders, and
-- SKIP LOCKED lets a second sequencer (a replica mid-failover) pass by instead
-- of waiting.
CREATE FUNCTION grace_sequence_outbox(batch_size integer)
    RETURNS TABLE (sequenced integer, first_seq bigint, last_seq bigint)
    LANGUAGE plpgsql
    AS $$
    DECLARE
        entry log_outbox%ROWTYPE;
        appended bigint;
    BEGIN
        sequenced := 0;
        FOR entry IN SELECT * FROM log_outbox ORDER BY id LIMIT batch_size FOR UPDATE SKIP LOCKED LOOP
            INSERT INTO immutable_log (actor, action, resource, subsystem, payload, result)
            VALUES (entry.actor, entry.action, entry.resource, entry.subsystem, entry.payload, entry.result)
            RETURNING seq INTO appended;
            IF entry.event_id IS NOT NULL THEN
                UPDATE action_events SET log_seq = appended WHERE id = entry.event_id;
            END IF;
            DELETE FROM log_outbox WHERE id = entry.id;
            sequenced := sequenced + 1;
            first_seq := coalesce(first_seq, appended);
            last_seq := appended;
        END LOOP;
        RETURN NEXT;
    END
    $$;

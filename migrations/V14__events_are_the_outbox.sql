-- The events are their own outbox: an event whose log_seq is NULL waits for the
-- sequencer. A write used to store each event twice (the event, and a
-- log_outbox row the sequencer deleted again), paying an insert, a foreign-key
-- check that locks the new event's row, and a delete per event; the actions
-- write three events per request. What the log entry needs and the event did
-- not hold - who acted, on what, with what result - is now on the event; the
-- log entry's action and subsystem are the event's type and its prefix, and its
-- payload is built from the event's columns when it is chained.

ALTER TABLE action_events
    ADD COLUMN actor text,
    ADD COLUMN resource text,
    ADD COLUMN result text;

-- Events still waiting in the outbox carry its fields over; chained events
-- keep NULL there (their log entry holds them), so no chained row is rewritten.
UPDATE action_events e
   SET actor = o.actor, resource = o.resource, result = o.result
  FROM log_outbox o
 WHERE o.event_id = e.id;

-- Every event written from now on can be chained. NOT VALID leaves alone an
-- event an older database held with neither a log entry nor an outbox row:
-- it never had a log entry to wait for (a C6 breach `grace verify` reports),
-- and the migration will not chain it under invented fields to hide that.
ALTER TABLE action_events ADD CONSTRAINT action_events_pending_complete
    CHECK (log_seq IS NOT NULL OR (actor IS NOT NULL AND resource IS NOT NULL AND result IS NOT NULL)) NOT VALID;

-- The sequencer's queue, and the log lag's count, without reading chained events.
CREATE INDEX action_events_pending_idx ON action_events (id) WHERE log_seq IS NULL AND actor IS NOT NULL;

DROP TABLE log_outbox;

-- As in V5: moves up to batch_size pending events onto the chain, oldest first,
-- under the chain's lock, so the seqs the chain trigger assigns are exactly
-- tail+1.. in event order, which is how events are linked. A log entry's
-- payload carries its event's identity and content, so the chain alone tells
-- what happened even without the events table (jsonb's text form: the same
-- event always renders alike).
CREATE OR REPLACE FUNCTION grace_sequence_outbox(batch_size integer)
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
            SELECT id, actor, event_type AS action, resource, split_part(event_type, '.', 1) AS subsystem,
                   jsonb_build_object('event_type', event_type, 'mission_id', mission_id,
                                      'contract_id', contract_id, 'approval_id', approval_id,
                                      'payload', payload)::text AS payload,
                   result
              FROM action_events
             WHERE log_seq IS NULL AND actor IS NOT NULL
             ORDER BY id
             LIMIT batch_size
               FOR UPDATE SKIP LOCKED),
        ordered AS (
            SELECT batch.*, tail + row_number() OVER (ORDER BY id) AS seq FROM batch),
        appended AS (
            INSERT INTO immutable_log (actor, action, resource, subsystem, payload, result)
            SELECT actor, action, resource, subsystem, payload, result FROM ordered ORDER BY seq
            RETURNING seq, action, payload),
        linked AS (
            UPDATE action_events e SET log_seq = o.seq FROM ordered o WHERE e.id = o.id)
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

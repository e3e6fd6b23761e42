-- The log's writers link its entries; the database checks every link, once
-- per statement, and refuses a statement with any entry that does not chain.
--
-- Until now a BEFORE INSERT trigger built the chain row by row (V2): for every
-- entry a PL/pgSQL call, the chain's lock taken again, the tail read again and
-- the hash computed. Under scripts/bench-backend that was half of the
-- sequencer's CPU (about 60 µs an entry, three entries an action) — and the
-- sequencer is a quarter of all the CPU the bench uses. The writers now do the
-- work they can do cheaply (`immutable_log::append`: take the chain's lock,
-- read the tail, compute seq, prev_hash and entry_hash in Rust, insert the
-- whole batch at once), and PostgreSQL keeps the guarantee the trigger gave —
-- no writer, however buggy, can fork or break the chain — by checking each
-- inserted entry against the entry before it, set-based, after the statement:
--   * the entry before it exists (seq 1 links to 64 zeros): with the seq
--     primary key, the chain stays contiguous and cannot fork;
--   * prev_hash is that entry's entry_hash;
--   * entry_hash is the canonical hash of the entry (grace_log_entry_hash, the
--     one definition of the encoding; the Rust verifier agrees with it);
--   * recorded_at is not before the entry before it, nor in the future.
-- A refused statement writes nothing. The check reads the entry before from
-- the table, so a writer that skipped the lock and raced another one fails
-- (on the primary key, or on a link it could not see) rather than forking.
-- UPDATE, DELETE and TRUNCATE stay refused (V2).

DROP TRIGGER immutable_log_chain ON immutable_log;
DROP FUNCTION immutable_log_chain();

-- The sequencer chains pending events in Rust now (src/backend/sequencer.rs).
DROP FUNCTION grace_sequence_outbox(integer);

CREATE FUNCTION immutable_log_check_links() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        broken record;
    BEGIN
        SELECT n.seq,
               CASE
                   WHEN n.seq > 1 AND p.seq IS NULL THEN 'the entry before it is missing'
                   WHEN n.prev_hash IS DISTINCT FROM coalesce(p.entry_hash, repeat('0', 64))
                       THEN 'prev_hash is not the entry_hash of the entry before it'
                   WHEN n.entry_hash IS DISTINCT FROM grace_log_entry_hash(n.seq, n.recorded_at, n.actor, n.action,
                           n.resource, n.subsystem, n.payload, n.result, n.prev_hash)
                       THEN 'entry_hash does not match the entry''s contents'
                   WHEN n.recorded_at < p.recorded_at THEN 'recorded_at is before the entry before it'
                   ELSE 'recorded_at is in the future'
               END AS problem
          INTO broken
          FROM appended n LEFT JOIN immutable_log p ON p.seq = n.seq - 1
         WHERE (n.seq > 1 AND p.seq IS NULL)
            OR n.prev_hash IS DISTINCT FROM coalesce(p.entry_hash, repeat('0', 64))
            OR n.entry_hash IS DISTINCT FROM grace_log_entry_hash(n.seq, n.recorded_at, n.actor, n.action,
                   n.resource, n.subsystem, n.payload, n.result, n.prev_hash)
            OR n.recorded_at < p.recorded_at
            OR n.recorded_at > clock_timestamp()
         ORDER BY n.seq
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'immutable_log: entry % does not chain: %', broken.seq, broken.problem
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    END
    $$;

-- Same name as V2's trigger: it is still the one that keeps the chain, and
-- `grace health` and the backend's start-up look for it by name.
CREATE TRIGGER immutable_log_chain
    AFTER INSERT ON immutable_log
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION immutable_log_check_links();

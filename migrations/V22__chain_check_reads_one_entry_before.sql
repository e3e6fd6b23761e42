-- The chain's statement check (V18) reads from the table only the entry before
-- the statement's first one; every other new entry's predecessor is in the
-- statement's own transition table.
--
-- V18 joined every new entry to the table (`LEFT JOIN immutable_log p ON
-- p.seq = n.seq - 1`). For a batch of 500 on a log of tens of thousands of
-- entries PostgreSQL chose a hash join over a sequential scan of the whole log,
-- and PL/pgSQL keeps a plan until the table's statistics change: under
-- scripts/bench-backend's tier-1 load `perf` put 15% of the sequencer's CPU
-- in that scan and its hash (its check: 19% of the sequencer's CPU before,
-- 10% after).
--
-- The same conditions as V18: the seqs already on the chain are 1..tail
-- (every earlier statement was checked), so an entry's predecessor is either
-- new in this statement or, for the first new entry, the table's tail — the
-- one row read by key here. A gap among the new seqs, or a first seq that is
-- not tail + 1, finds no predecessor, as before.

CREATE OR REPLACE FUNCTION immutable_log_check_links() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    DECLARE
        broken record;
    BEGIN
        WITH before_first AS (
            SELECT l.seq, l.entry_hash, l.recorded_at FROM immutable_log l
             WHERE l.seq = (SELECT min(a.seq) - 1 FROM appended a)),
        predecessors AS (
            SELECT seq, entry_hash, recorded_at FROM appended
            UNION ALL
            SELECT seq, entry_hash, recorded_at FROM before_first)
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
          FROM appended n LEFT JOIN predecessors p ON p.seq = n.seq - 1
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

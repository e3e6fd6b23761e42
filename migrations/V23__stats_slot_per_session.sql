-- A counter slot of its own for every session that writes (V8's slots were
-- pg_backend_pid() % 16). With a pool of 16 connections, two sessions shared a
-- slot most of the time, and a writer waited on the other's transaction for the
-- slot's row: a task submission (two statements and a commit) or the task
-- runner's batch held it for several round trips, and every chat, task or event
-- write of the mission on that slot queued behind it (Lock:transactionid on
-- mission_stats under a steady load: seconds of p99).
--
-- Now a session claims a free slot once, with a session-level advisory lock
-- that PostgreSQL releases when the session ends, so no two live sessions hold
-- the same slot, on one backend or across replicas. The backend claims one as
-- each pooled connection is made; grace_stats_slot() reads the claim, and a
-- session that made none (a hand-made fix, a bulk loader) or found every slot
-- taken falls back to its pid, shared as before. 128 slots: a read sums at
-- most 128 rows of a mission.

ALTER DOMAIN stats_slot DROP CONSTRAINT stats_slot_check;
ALTER DOMAIN stats_slot ADD CONSTRAINT stats_slot_check CHECK (VALUE BETWEEN 0 AND 127);

-- The advisory lock key of slot N is (grace_stats_slot_lock_class(), N).
CREATE FUNCTION grace_stats_slot_lock_class() RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 1196573507 $$;

-- Claims a slot for this session: the one it holds already (a claim survives
-- a rollback of the transaction it was made in; the setting does not), else
-- the first free one. NULL when all are taken.
CREATE FUNCTION grace_claim_stats_slot() RETURNS smallint
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    held smallint;
BEGIN
    SELECT objid::bigint::smallint INTO held FROM pg_locks
     WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
       AND classid = grace_stats_slot_lock_class() AND objsubid = 2
     LIMIT 1;
    IF held IS NULL THEN
        FOR candidate IN 0..127 LOOP
            IF pg_try_advisory_lock(grace_stats_slot_lock_class(), candidate) THEN
                held := candidate;
                EXIT;
            END IF;
        END LOOP;
    END IF;
    IF held IS NOT NULL THEN
        PERFORM set_config('grace.stats_slot', held::text, false);
    END IF;
    RETURN held;
END
$$;

-- The slot of the writing session: its claim, or its pid's.
CREATE OR REPLACE FUNCTION grace_stats_slot() RETURNS smallint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(nullif(current_setting('grace.stats_slot', true), '')::smallint,
                          (pg_backend_pid() % 128)::smallint) $$;

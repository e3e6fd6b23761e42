-- Every write's outcome, not only the acknowledged ones (the faults issue's
-- model, after Jepsen's checkers): a write is acknowledged (it must be stored
-- exactly once), refused definitely (it must not be stored), or indeterminate
-- — no answer came, so it may be stored, at most once. The acknowledged-writes
-- check (C7) judges the stored rows against all three; without the refused and
-- indeterminate keys, a write committed by a replica killed before it answered
-- read as "stored without acknowledgement" on a correct system.

ALTER TABLE control.acked_writes RENAME TO write_outcomes;
ALTER INDEX control.acked_writes_pkey RENAME TO write_outcomes_pkey;
ALTER INDEX control.acked_writes_worker_id_idx RENAME TO write_outcomes_worker_id_idx;
ALTER TABLE control.write_outcomes
    ADD COLUMN outcome text NOT NULL DEFAULT 'acknowledged'
        CHECK (outcome IN ('acknowledged', 'refused', 'indeterminate'));
ALTER TABLE control.write_outcomes ALTER COLUMN outcome DROP DEFAULT;

ALTER TABLE control.worker_results
    ADD COLUMN refused_keys_count bigint NOT NULL DEFAULT 0 CHECK (refused_keys_count >= 0),
    ADD COLUMN indeterminate_keys_count bigint NOT NULL DEFAULT 0 CHECK (indeterminate_keys_count >= 0);

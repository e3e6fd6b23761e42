-- Where a worker's share starts in the run's order of users. The run's users
-- are given scenarios by weight in one order across the whole run, and each
-- share runs its slice of it, so the traffic mix does not depend on how many
-- workers split the users. Shares written before this column start at 0 (each
-- took its own round robin, as it always had).
ALTER TABLE control.run_workers
    ADD COLUMN first_user integer NOT NULL DEFAULT 0 CHECK (first_user >= 0);

-- A run can be stopped before its time (Ctrl-C in `grace load`): the
-- coordinator marks it 'stopping', each worker hears it with its next
-- heartbeat, ends its load and uploads what it measured, and the run is
-- merged and judged as interrupted rather than abandoned.
ALTER TABLE control.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE control.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('waiting', 'running', 'stopping', 'merging', 'completed', 'failed'));

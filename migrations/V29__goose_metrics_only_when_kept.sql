-- A worker keeps goose's own metrics only when the run asks for goose's HTML
-- report (`--goose-report`): Grace's results are read from its own
-- recordings (`latency_histogram`), and goose's per-request metrics cost CPU
-- on every request. Kept, they are stored as before (the users' history of
-- a staged run shows there).
ALTER TABLE control.worker_results ALTER COLUMN goose_metrics DROP NOT NULL;

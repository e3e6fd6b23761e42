-- Where a running share stands, published with its worker's heartbeat: its
-- requests, failures and injected faults so far and the histogram of every
-- latency so far (HdrHistogram V2, base64), so the coordinator shows the
-- whole run's progress with an exact p95 merged from the shares.
ALTER TABLE control.run_workers ADD COLUMN progress jsonb;

-- The idempotency keys each worker saw the backend acknowledge. Workers also
-- upload a count and an order-independent digest (control.worker_results);
-- the keys themselves let the acknowledged-writes check (C7) say exactly how
-- many writes are missing or extra, and which, when the digests differ.

CREATE TABLE control.acked_writes (
    run_id           uuid NOT NULL REFERENCES control.runs (id),
    worker_id        uuid NOT NULL REFERENCES control.workers (id),
    -- Every key names its run and worker, so it is unique within a run.
    idempotency_key  text NOT NULL,
    PRIMARY KEY (run_id, idempotency_key)
);
CREATE INDEX acked_writes_worker_id_idx ON control.acked_writes (worker_id);

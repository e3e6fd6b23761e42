-- The distributed load's control plane. goose has no manager/worker mode, so
-- workers and the coordinator meet here: workers register and heartbeat, the
-- coordinator creates a run and splits its users, workers upload what they saw.
-- Its own schema keeps it apart from the backend's data.

CREATE SCHEMA control;

CREATE TABLE control.workers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host            text NOT NULL,
    pid             integer NOT NULL CHECK (pid > 0),
    capacity        integer NOT NULL CHECK (capacity > 0),
    status          text NOT NULL DEFAULT 'idle'
                    CHECK (status IN ('idle', 'running', 'lost', 'stopped')),
    registered_at   timestamptz NOT NULL DEFAULT now(),
    last_heartbeat  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE control.runs (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mission_id        uuid REFERENCES public.missions (id),
    config            jsonb NOT NULL,
    expected_workers  integer NOT NULL CHECK (expected_workers >= 1),
    status            text NOT NULL DEFAULT 'waiting'
                      CHECK (status IN ('waiting', 'running', 'merging', 'completed', 'failed')),
    -- Announced on the database clock, so workers on different hosts start together.
    start_at          timestamptz,
    verdict           jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX runs_mission_id_idx ON control.runs (mission_id);

-- Which worker runs how many of a run's users.
CREATE TABLE control.run_workers (
    run_id     uuid NOT NULL REFERENCES control.runs (id),
    worker_id  uuid NOT NULL REFERENCES control.workers (id),
    users      integer NOT NULL CHECK (users >= 0),
    status     text NOT NULL DEFAULT 'assigned'
               CHECK (status IN ('assigned', 'running', 'done', 'lost')),
    PRIMARY KEY (run_id, worker_id)
);
CREATE INDEX run_workers_worker_id_idx ON control.run_workers (worker_id);

CREATE TABLE control.worker_results (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id             uuid NOT NULL REFERENCES control.runs (id),
    worker_id          uuid NOT NULL REFERENCES control.workers (id),
    goose_metrics      jsonb NOT NULL,
    -- HdrHistograms in their V2 serialization, overall and per request name.
    latency_histogram  bytea NOT NULL,
    acked_keys_count   bigint NOT NULL CHECK (acked_keys_count >= 0),
    -- An order-independent hash of the acknowledged write keys (C7).
    acked_keys_digest  text NOT NULL CHECK (acked_keys_digest ~ '^[0-9a-f]{64}$'),
    goose_report_html  text,
    uploaded_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, worker_id)
);
CREATE INDEX worker_results_worker_id_idx ON control.worker_results (worker_id);

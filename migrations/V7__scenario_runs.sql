-- Past scenario runs, for `grace report history`: one row per `grace scenario`
-- and one per iteration, each iteration linked to the mission it ran.

CREATE TABLE control.scenario_runs (
    id           uuid PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    passed       boolean NOT NULL,
    exit_code    smallint NOT NULL CHECK (exit_code BETWEEN 0 AND 255),
    chaos        boolean NOT NULL,
    -- The report's summary, aggregates and trends (the full report is a file).
    summary      jsonb NOT NULL CHECK (jsonb_typeof(summary) = 'object')
);
CREATE INDEX scenario_runs_started_at_idx ON control.scenario_runs (started_at);

CREATE TABLE control.scenario_iterations (
    run_id      uuid NOT NULL REFERENCES control.scenario_runs (id),
    iteration   integer NOT NULL CHECK (iteration >= 1),
    mission_id  uuid NOT NULL REFERENCES public.missions (id),
    passed      boolean NOT NULL,
    PRIMARY KEY (run_id, iteration)
);
CREATE INDEX scenario_iterations_mission_id_idx ON control.scenario_iterations (mission_id);

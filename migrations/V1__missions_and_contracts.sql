-- Missions and the action pipeline: what an error turns into, and every artifact
-- an action leaves behind (snapshot, benchmarks, approval). Every link is a real
-- FOREIGN KEY with an index, so consistency condition C1 (no orphans) is enforced
-- by Postgres and checkable by `grace health`.

-- The policy that maps a detected error type to its autonomy tier and the action
-- taken for it. Seeded by `grace bootstrap`; unknown error types escalate to tier 3
-- in code, and the contract records why.
CREATE TABLE tier_policy (
    error_type   text PRIMARY KEY CHECK (error_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    tier         smallint NOT NULL CHECK (tier BETWEEN 1 AND 3),
    action_type  text NOT NULL CHECK (action_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    description  text NOT NULL
);

-- The golden baseline verification benchmarks compare against: one row per
-- benchmark kind, with the largest drift that still passes.
CREATE TABLE benchmark_baselines (
    kind        text PRIMARY KEY CHECK (kind IN ('smoke', 'regression')),
    metrics     jsonb NOT NULL CHECK (jsonb_typeof(metrics) = 'object'),
    max_drift   double precision NOT NULL CHECK (max_drift >= 0 AND max_drift <= 1),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE missions (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    goal                text NOT NULL DEFAULT '',
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'completed', 'failed', 'aborted')),
    total_actions       integer NOT NULL DEFAULT 0 CHECK (total_actions >= 0),
    completed_actions   integer NOT NULL DEFAULT 0 CHECK (completed_actions >= 0),
    failed_actions      integer NOT NULL DEFAULT 0 CHECK (failed_actions >= 0),
    rolled_back_actions integer NOT NULL DEFAULT 0 CHECK (rolled_back_actions >= 0),
    progress_ratio      double precision NOT NULL DEFAULT 0
                        CHECK (progress_ratio >= 0 AND progress_ratio <= 1),
    confidence          double precision CHECK (confidence >= 0 AND confidence <= 1),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz
);

-- The live state an action changes (a pool size, a timeout, a lock holder...).
-- A snapshot captures it before a tier 2+ action; a rollback writes it back, so
-- C3 can compare the restored state with the snapshot.
CREATE TABLE managed_resources (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mission_id  uuid NOT NULL REFERENCES missions (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    state       jsonb NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mission_id, name)
);

CREATE TABLE action_contracts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mission_id          uuid NOT NULL REFERENCES missions (id),
    resource_id         uuid REFERENCES managed_resources (id),
    -- The client's key for POST /api/errors: a retried request finds its contract.
    idempotency_key     text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    error_type          text NOT NULL CHECK (error_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    error_message       text NOT NULL,
    severity            text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    action_type         text NOT NULL,
    -- The tier the policy gave, and the tier after the confidence path; they differ
    -- when low confidence escalated the action.
    policy_tier         smallint NOT NULL CHECK (policy_tier BETWEEN 1 AND 3),
    tier                smallint NOT NULL CHECK (tier BETWEEN 1 AND 3 AND tier >= policy_tier),
    confidence          double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    confidence_path     text NOT NULL CHECK (confidence_path IN ('high', 'medium', 'low')),
    escalation_reason   text,
    expected_effect     jsonb NOT NULL,
    baseline_state      jsonb NOT NULL,
    status              text NOT NULL DEFAULT 'planned'
                        CHECK (status IN ('planned', 'awaiting_approval', 'executing', 'verified',
                                          'violated', 'rolled_back', 'failed', 'rejected')),
    verification_result jsonb,
    snapshot_id         uuid,  -- FOREIGN KEY added below, once snapshots exist
    created_at          timestamptz NOT NULL DEFAULT now(),
    decided_at          timestamptz,
    executed_at         timestamptz,
    verified_at         timestamptz
);
CREATE INDEX action_contracts_mission_id_idx ON action_contracts (mission_id);
CREATE INDEX action_contracts_resource_id_idx ON action_contracts (resource_id);

CREATE TABLE safe_hold_snapshots (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- One snapshot per contract: C3 requires exactly one for tier 2+ executions.
    contract_id    uuid NOT NULL UNIQUE REFERENCES action_contracts (id),
    state          jsonb NOT NULL,
    manifest_hash  text NOT NULL CHECK (manifest_hash ~ '^[0-9a-f]{64}$'),
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'restored')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    restored_at    timestamptz,
    CHECK ((status = 'restored') = (restored_at IS NOT NULL))
);

ALTER TABLE action_contracts
    ADD CONSTRAINT action_contracts_snapshot_id_fkey
    FOREIGN KEY (snapshot_id) REFERENCES safe_hold_snapshots (id);
CREATE INDEX action_contracts_snapshot_id_idx ON action_contracts (snapshot_id);

CREATE TABLE benchmark_runs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    contract_id     uuid NOT NULL REFERENCES action_contracts (id),
    kind            text NOT NULL CHECK (kind IN ('smoke', 'regression')),
    metrics         jsonb NOT NULL,
    passed          boolean NOT NULL,
    drift_detected  boolean NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX benchmark_runs_contract_id_idx ON benchmark_runs (contract_id);

CREATE TABLE approval_requests (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- One request per contract (C4): a decision is taken once.
    contract_id   uuid NOT NULL UNIQUE REFERENCES action_contracts (id),
    tier          smallint NOT NULL CHECK (tier BETWEEN 2 AND 3),
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    requested_by  text NOT NULL,
    decided_by    text,
    reason        text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    -- A decision always carries who and when (C4); a pending request carries neither.
    CHECK ((status = 'pending') = (decided_by IS NULL AND decided_at IS NULL))
);
CREATE INDEX approval_requests_status_idx ON approval_requests (status);

-- Read models that cost the same at any data size (DESIGN.md, "No request costs
-- more as data grows"). The metric summary and the verification stats the load
-- reads all day used to count every contract, chat message, task and event of
-- the mission on each call. Now every write adds its counts to per-mission
-- counters in the statement that writes it (the backend's pipeline, chat, tasks
-- and event recording do), so a write that rolls back takes its counts with it.
-- (Statement-level triggers did the same and cost 45% of the tier-1 action
-- throughput; the counting rides on statements the writes run anyway.) What
-- writes rows any other way — a bulk loader, a hand-made fix — calls
-- grace_recount_mission_stats() afterwards.
--
-- Hot counters would serialize every writer of a mission on one row, so each
-- mission has up to 16 slots and a writer updates the slot of its own session
-- (its backend pid modulo 16); a read sums at most 16 rows. A slot may go
-- negative (a status leaving it); only the sums mean anything.

CREATE TABLE mission_stats (
    mission_id          uuid NOT NULL REFERENCES missions (id),
    slot                smallint NOT NULL CHECK (slot BETWEEN 0 AND 15),
    contracts           bigint NOT NULL DEFAULT 0,
    -- Contracts by status (the specification's ContractStatus).
    planned             bigint NOT NULL DEFAULT 0,
    awaiting_approval   bigint NOT NULL DEFAULT 0,
    executing           bigint NOT NULL DEFAULT 0,
    verified            bigint NOT NULL DEFAULT 0,
    violated            bigint NOT NULL DEFAULT 0,
    rolled_back         bigint NOT NULL DEFAULT 0,
    failed              bigint NOT NULL DEFAULT 0,
    rejected            bigint NOT NULL DEFAULT 0,
    -- Contracts by tier.
    tier_1              bigint NOT NULL DEFAULT 0,
    tier_2              bigint NOT NULL DEFAULT 0,
    tier_3              bigint NOT NULL DEFAULT 0,
    -- Contracts that executed (executed_at set).
    executed            bigint NOT NULL DEFAULT 0,
    snapshots           bigint NOT NULL DEFAULT 0,
    snapshots_restored  bigint NOT NULL DEFAULT 0,
    benchmarks          bigint NOT NULL DEFAULT 0,
    benchmarks_failed   bigint NOT NULL DEFAULT 0,
    approvals           bigint NOT NULL DEFAULT 0,
    chat_messages       bigint NOT NULL DEFAULT 0,
    tasks               bigint NOT NULL DEFAULT 0,
    events              bigint NOT NULL DEFAULT 0,
    first_contract_at   timestamptz,
    last_contract_at    timestamptz,
    PRIMARY KEY (mission_id, slot)
);

-- The mission's confidence, minute by minute: the summary's confidence trend.
-- Contract writes already take the mission's row lock, so one row per minute.
CREATE TABLE mission_confidence_minutes (
    mission_id      uuid NOT NULL REFERENCES missions (id),
    minute          timestamptz NOT NULL,
    contracts       bigint NOT NULL,
    confidence_sum  double precision NOT NULL,
    PRIMARY KEY (mission_id, minute)
);

-- The slot of the writing session.
CREATE FUNCTION grace_stats_slot() RETURNS smallint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT (pg_backend_pid() % 16)::smallint $$;

-- The all-missions summary counts the events of no mission (mesh pings) apart.
CREATE INDEX action_events_without_mission_idx ON action_events (id) WHERE mission_id IS NULL;

-- The latest contracts of a mission, newest first, without sorting them all.
CREATE INDEX action_contracts_mission_created_idx ON action_contracts (mission_id, created_at DESC, id DESC);

-- Every mission's counters counted again from its rows (into slot 0): how the
-- counters start on a database written before them, and how a bulk loader
-- that wrote rows directly brings them up to date.
CREATE FUNCTION grace_recount_mission_stats() RETURNS void
    LANGUAGE sql
    AS $$
    DELETE FROM mission_stats;
    DELETE FROM mission_confidence_minutes;
    INSERT INTO mission_stats (mission_id, slot, contracts, planned, awaiting_approval, executing, verified, violated,
                               rolled_back, failed, rejected, tier_1, tier_2, tier_3, executed, first_contract_at,
                               last_contract_at, snapshots, snapshots_restored, benchmarks, benchmarks_failed,
                               approvals, chat_messages, tasks, events)
    SELECT m.id, 0, c.contracts, c.planned, c.awaiting_approval, c.executing, c.verified, c.violated, c.rolled_back,
           c.failed, c.rejected, c.tier_1, c.tier_2, c.tier_3, c.executed, c.first_at, c.last_at,
           coalesce(s.snapshots, 0), coalesce(s.restored, 0), coalesce(b.benchmarks, 0), coalesce(b.failed, 0),
           coalesce(a.approvals, 0), coalesce(chat.n, 0), coalesce(task.n, 0), coalesce(event.n, 0)
      FROM missions m
      CROSS JOIN LATERAL (
          SELECT count(*) AS contracts,
                 count(*) FILTER (WHERE status = 'planned') AS planned,
                 count(*) FILTER (WHERE status = 'awaiting_approval') AS awaiting_approval,
                 count(*) FILTER (WHERE status = 'executing') AS executing,
                 count(*) FILTER (WHERE status = 'verified') AS verified,
                 count(*) FILTER (WHERE status = 'violated') AS violated,
                 count(*) FILTER (WHERE status = 'rolled_back') AS rolled_back,
                 count(*) FILTER (WHERE status = 'failed') AS failed,
                 count(*) FILTER (WHERE status = 'rejected') AS rejected,
                 count(*) FILTER (WHERE tier = 1) AS tier_1,
                 count(*) FILTER (WHERE tier = 2) AS tier_2,
                 count(*) FILTER (WHERE tier = 3) AS tier_3,
                 count(*) FILTER (WHERE executed_at IS NOT NULL) AS executed,
                 min(created_at) AS first_at, max(created_at) AS last_at
            FROM action_contracts WHERE mission_id = m.id) c
      LEFT JOIN (SELECT x.mission_id, count(*) AS snapshots, count(*) FILTER (WHERE s.status = 'restored') AS restored
                   FROM safe_hold_snapshots s JOIN action_contracts x ON x.id = s.contract_id GROUP BY 1) s
             ON s.mission_id = m.id
      LEFT JOIN (SELECT x.mission_id, count(*) AS benchmarks, count(*) FILTER (WHERE NOT b.passed) AS failed
                   FROM benchmark_runs b JOIN action_contracts x ON x.id = b.contract_id GROUP BY 1) b
             ON b.mission_id = m.id
      LEFT JOIN (SELECT x.mission_id, count(*) AS approvals
                   FROM approval_requests a JOIN action_contracts x ON x.id = a.contract_id GROUP BY 1) a
             ON a.mission_id = m.id
      LEFT JOIN (SELECT mission_id, count(*) AS n FROM chat_messages GROUP BY 1) chat ON chat.mission_id = m.id
      LEFT JOIN (SELECT mission_id, count(*) AS n FROM tasks GROUP BY 1) task ON task.mission_id = m.id
      LEFT JOIN (SELECT mission_id, count(*) AS n FROM action_events GROUP BY 1) event ON event.mission_id = m.id;
    INSERT INTO mission_confidence_minutes (mission_id, minute, contracts, confidence_sum)
    SELECT mission_id, date_trunc('minute', created_at), count(*), sum(confidence)
      FROM action_contracts GROUP BY 1, 2;
    $$;

SELECT grace_recount_mission_stats();

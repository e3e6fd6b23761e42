-- Read models that cost the same at any data size (DESIGN.md, "No request costs
-- more as data grows"). The metric summary and the verification stats the load
-- reads all day used to count every contract, chat message, task and event of
-- the mission on each call. Now each write keeps per-mission counters in its own
-- transaction, by statement-level triggers: whatever writes the rows (the
-- pipeline, a bulk loader, a hand-made fix), the counters follow, and a write
-- that rolls back takes its counts with it.
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

CREATE FUNCTION grace_count_contracts_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, contracts, planned, awaiting_approval, executing, verified,
                                        violated, rolled_back, failed, rejected, tier_1, tier_2, tier_3, executed,
                                        first_contract_at, last_contract_at)
        SELECT mission_id, grace_stats_slot(), count(*),
               count(*) FILTER (WHERE status = 'planned'), count(*) FILTER (WHERE status = 'awaiting_approval'),
               count(*) FILTER (WHERE status = 'executing'), count(*) FILTER (WHERE status = 'verified'),
               count(*) FILTER (WHERE status = 'violated'), count(*) FILTER (WHERE status = 'rolled_back'),
               count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'rejected'),
               count(*) FILTER (WHERE tier = 1), count(*) FILTER (WHERE tier = 2), count(*) FILTER (WHERE tier = 3),
               count(*) FILTER (WHERE executed_at IS NOT NULL), min(created_at), max(created_at)
          FROM inserted GROUP BY mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET
            contracts = s.contracts + excluded.contracts,
            planned = s.planned + excluded.planned,
            awaiting_approval = s.awaiting_approval + excluded.awaiting_approval,
            executing = s.executing + excluded.executing,
            verified = s.verified + excluded.verified,
            violated = s.violated + excluded.violated,
            rolled_back = s.rolled_back + excluded.rolled_back,
            failed = s.failed + excluded.failed,
            rejected = s.rejected + excluded.rejected,
            tier_1 = s.tier_1 + excluded.tier_1,
            tier_2 = s.tier_2 + excluded.tier_2,
            tier_3 = s.tier_3 + excluded.tier_3,
            executed = s.executed + excluded.executed,
            first_contract_at = least(s.first_contract_at, excluded.first_contract_at),
            last_contract_at = greatest(s.last_contract_at, excluded.last_contract_at);
        INSERT INTO mission_confidence_minutes AS m (mission_id, minute, contracts, confidence_sum)
        SELECT mission_id, date_trunc('minute', created_at), count(*), sum(confidence)
          FROM inserted GROUP BY 1, 2
        ON CONFLICT (mission_id, minute) DO UPDATE SET
            contracts = m.contracts + excluded.contracts,
            confidence_sum = m.confidence_sum + excluded.confidence_sum;
        RETURN NULL;
    END
    $$;

-- A status or execution change moves a contract from one count to another.
CREATE FUNCTION grace_count_contracts_updated() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, planned, awaiting_approval, executing, verified, violated,
                                        rolled_back, failed, rejected, executed)
        SELECT n.mission_id, grace_stats_slot(),
               count(*) FILTER (WHERE n.status = 'planned') - count(*) FILTER (WHERE o.status = 'planned'),
               count(*) FILTER (WHERE n.status = 'awaiting_approval')
                 - count(*) FILTER (WHERE o.status = 'awaiting_approval'),
               count(*) FILTER (WHERE n.status = 'executing') - count(*) FILTER (WHERE o.status = 'executing'),
               count(*) FILTER (WHERE n.status = 'verified') - count(*) FILTER (WHERE o.status = 'verified'),
               count(*) FILTER (WHERE n.status = 'violated') - count(*) FILTER (WHERE o.status = 'violated'),
               count(*) FILTER (WHERE n.status = 'rolled_back') - count(*) FILTER (WHERE o.status = 'rolled_back'),
               count(*) FILTER (WHERE n.status = 'failed') - count(*) FILTER (WHERE o.status = 'failed'),
               count(*) FILTER (WHERE n.status = 'rejected') - count(*) FILTER (WHERE o.status = 'rejected'),
               count(*) FILTER (WHERE n.executed_at IS NOT NULL) - count(*) FILTER (WHERE o.executed_at IS NOT NULL)
          FROM updated n JOIN previous o ON o.id = n.id
         WHERE n.status IS DISTINCT FROM o.status OR (n.executed_at IS NULL) <> (o.executed_at IS NULL)
         GROUP BY n.mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET
            planned = s.planned + excluded.planned,
            awaiting_approval = s.awaiting_approval + excluded.awaiting_approval,
            executing = s.executing + excluded.executing,
            verified = s.verified + excluded.verified,
            violated = s.violated + excluded.violated,
            rolled_back = s.rolled_back + excluded.rolled_back,
            failed = s.failed + excluded.failed,
            rejected = s.rejected + excluded.rejected,
            executed = s.executed + excluded.executed;
        RETURN NULL;
    END
    $$;

CREATE FUNCTION grace_count_snapshots_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, snapshots, snapshots_restored)
        SELECT c.mission_id, grace_stats_slot(), count(*), count(*) FILTER (WHERE i.status = 'restored')
          FROM inserted i JOIN action_contracts c ON c.id = i.contract_id GROUP BY c.mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET
            snapshots = s.snapshots + excluded.snapshots,
            snapshots_restored = s.snapshots_restored + excluded.snapshots_restored;
        RETURN NULL;
    END
    $$;

CREATE FUNCTION grace_count_snapshots_updated() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, snapshots_restored)
        SELECT c.mission_id, grace_stats_slot(),
               count(*) FILTER (WHERE n.status = 'restored') - count(*) FILTER (WHERE o.status = 'restored')
          FROM updated n JOIN previous o ON o.id = n.id JOIN action_contracts c ON c.id = n.contract_id
         WHERE n.status IS DISTINCT FROM o.status
         GROUP BY c.mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET
            snapshots_restored = s.snapshots_restored + excluded.snapshots_restored;
        RETURN NULL;
    END
    $$;

CREATE FUNCTION grace_count_benchmarks_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, benchmarks, benchmarks_failed)
        SELECT c.mission_id, grace_stats_slot(), count(*), count(*) FILTER (WHERE NOT i.passed)
          FROM inserted i JOIN action_contracts c ON c.id = i.contract_id GROUP BY c.mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET
            benchmarks = s.benchmarks + excluded.benchmarks,
            benchmarks_failed = s.benchmarks_failed + excluded.benchmarks_failed;
        RETURN NULL;
    END
    $$;

CREATE FUNCTION grace_count_approvals_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, approvals)
        SELECT c.mission_id, grace_stats_slot(), count(*)
          FROM inserted i JOIN action_contracts c ON c.id = i.contract_id GROUP BY c.mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET approvals = s.approvals + excluded.approvals;
        RETURN NULL;
    END
    $$;

CREATE FUNCTION grace_count_chat_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, chat_messages)
        SELECT mission_id, grace_stats_slot(), count(*) FROM inserted GROUP BY mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET chat_messages = s.chat_messages + excluded.chat_messages;
        RETURN NULL;
    END
    $$;

CREATE FUNCTION grace_count_tasks_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, tasks)
        SELECT mission_id, grace_stats_slot(), count(*) FROM inserted GROUP BY mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET tasks = s.tasks + excluded.tasks;
        RETURN NULL;
    END
    $$;

-- Events without a mission (mesh pings) are not a mission's; the all-missions
-- summary counts them apart (a partial index keeps that cheap).
CREATE FUNCTION grace_count_events_inserted() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        INSERT INTO mission_stats AS s (mission_id, slot, events)
        SELECT mission_id, grace_stats_slot(), count(*) FROM inserted WHERE mission_id IS NOT NULL GROUP BY mission_id
        ON CONFLICT (mission_id, slot) DO UPDATE SET events = s.events + excluded.events;
        RETURN NULL;
    END
    $$;
CREATE INDEX action_events_without_mission_idx ON action_events (id) WHERE mission_id IS NULL;

CREATE TRIGGER action_contracts_counted_on_insert AFTER INSERT ON action_contracts
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION grace_count_contracts_inserted();
CREATE TRIGGER action_contracts_counted_on_update AFTER UPDATE ON action_contracts
    REFERENCING OLD TABLE AS previous NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION grace_count_contracts_updated();
CREATE TRIGGER safe_hold_snapshots_counted_on_insert AFTER INSERT ON safe_hold_snapshots
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION grace_count_snapshots_inserted();
CREATE TRIGGER safe_hold_snapshots_counted_on_update AFTER UPDATE ON safe_hold_snapshots
    REFERENCING OLD TABLE AS previous NEW TABLE AS updated
    FOR EACH STATEMENT EXECUTE FUNCTION grace_count_snapshots_updated();
CREATE TRIGGER benchmark_runs_counted_on_insert AFTER INSERT ON benchmark_runs
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION grace_count_benchmarks_inserted();
CREATE TRIGGER approval_requests_counted_on_insert AFTER INSERT ON approval_requests
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION grace_count_approvals_inserted();
CREATE TRIGGER chat_messages_counted_on_insert AFTER INSERT ON chat_messages
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION grace_count_chat_inserted();
CREATE TRIGGER tasks_counted_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION grace_count_tasks_inserted();
CREATE TRIGGER action_events_counted_on_insert AFTER INSERT ON action_events
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION grace_count_events_inserted();

-- The latest contracts of a mission, newest first, without sorting them all.
CREATE INDEX action_contracts_mission_created_idx ON action_contracts (mission_id, created_at DESC, id DESC);

-- What was written before the counters existed, counted once (slot 0).
INSERT INTO mission_stats (mission_id, slot, contracts, planned, awaiting_approval, executing, verified, violated,
                           rolled_back, failed, rejected, tier_1, tier_2, tier_3, executed, first_contract_at,
                           last_contract_at, snapshots, snapshots_restored, benchmarks, benchmarks_failed, approvals,
                           chat_messages, tasks, events)
SELECT m.id, 0, c.contracts, c.planned, c.awaiting_approval, c.executing, c.verified, c.violated, c.rolled_back,
       c.failed, c.rejected, c.tier_1, c.tier_2, c.tier_3, c.executed, c.first_at, c.last_at,
       (SELECT count(*) FROM safe_hold_snapshots s JOIN action_contracts x ON x.id = s.contract_id WHERE x.mission_id = m.id),
       (SELECT count(*) FROM safe_hold_snapshots s JOIN action_contracts x ON x.id = s.contract_id
         WHERE x.mission_id = m.id AND s.status = 'restored'),
       (SELECT count(*) FROM benchmark_runs b JOIN action_contracts x ON x.id = b.contract_id WHERE x.mission_id = m.id),
       (SELECT count(*) FROM benchmark_runs b JOIN action_contracts x ON x.id = b.contract_id
         WHERE x.mission_id = m.id AND NOT b.passed),
       (SELECT count(*) FROM approval_requests a JOIN action_contracts x ON x.id = a.contract_id WHERE x.mission_id = m.id),
       (SELECT count(*) FROM chat_messages WHERE mission_id = m.id),
       (SELECT count(*) FROM tasks WHERE mission_id = m.id),
       (SELECT count(*) FROM action_events WHERE mission_id = m.id)
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
        FROM action_contracts WHERE mission_id = m.id) c;

INSERT INTO mission_confidence_minutes (mission_id, minute, contracts, confidence_sum)
SELECT mission_id, date_trunc('minute', created_at), count(*), sum(confidence)
  FROM action_contracts GROUP BY 1, 2;

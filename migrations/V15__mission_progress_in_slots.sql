-- A mission's progress counters (total, completed, failed, rolled back; the
-- progress ratio and the average confidence) move off the mission row into the
-- slotted counters of V8, and are read through the view `mission_progress`.
--
-- Every action used to update the mission row: eight concurrent writers of a
-- mission waited for each other on its lock, and every FOREIGN KEY check of
-- the mission's new rows (eight per action) locked a row version that a
-- writer was replacing, so PostgreSQL made a MultiXact of the lockers each
-- time and read the members back on every scan of the table's page of dead
-- versions (11% of PostgreSQL's CPU under scripts/bench-backend). The mission
-- row now changes only when the mission itself does.

ALTER TABLE mission_stats ADD COLUMN confidence_sum double precision NOT NULL DEFAULT 0;

-- The confidence trend's minutes are slotted too (one row per minute was the
-- same hot row).
ALTER TABLE mission_confidence_minutes ADD COLUMN slot smallint NOT NULL DEFAULT 0 CHECK (slot BETWEEN 0 AND 15);
ALTER TABLE mission_confidence_minutes DROP CONSTRAINT mission_confidence_minutes_pkey;
ALTER TABLE mission_confidence_minutes ADD PRIMARY KEY (mission_id, minute, slot);

-- The mission row's counters were kept with the slotted ones since V8, so the
-- slots already hold them; only the confidence sum is new.
INSERT INTO mission_stats AS s (mission_id, slot, confidence_sum)
SELECT mission_id, 0, sum(confidence) FROM action_contracts GROUP BY mission_id
ON CONFLICT (mission_id, slot) DO UPDATE SET confidence_sum = excluded.confidence_sum;

ALTER TABLE missions
    DROP COLUMN total_actions,
    DROP COLUMN completed_actions,
    DROP COLUMN failed_actions,
    DROP COLUMN rolled_back_actions,
    DROP COLUMN progress_ratio,
    DROP COLUMN confidence;

-- A mission's progress: sums over its (at most 16) slots, so reading it costs
-- the same at any size. Completed counts verified contracts; failed, failed
-- and rejected ones (the specification's MissionCounter; C5 recounts them).
CREATE VIEW mission_progress AS
SELECT m.id AS mission_id, p.total_actions, p.completed_actions, p.failed_actions, p.rolled_back_actions,
       (p.completed_actions + p.failed_actions + p.rolled_back_actions)::float8 / greatest(p.total_actions, 1)
           AS progress_ratio,
       p.confidence
  FROM missions m
 CROSS JOIN LATERAL (
     SELECT coalesce(sum(s.contracts), 0)::int AS total_actions,
            coalesce(sum(s.verified), 0)::int AS completed_actions,
            coalesce(sum(s.failed + s.rejected), 0)::int AS failed_actions,
            coalesce(sum(s.rolled_back), 0)::int AS rolled_back_actions,
            sum(s.confidence_sum) / nullif(sum(s.contracts), 0) AS confidence
       FROM mission_stats s WHERE s.mission_id = m.id) p;

-- As in V8, with the confidence sum.
CREATE OR REPLACE FUNCTION grace_recount_mission_stats() RETURNS void
    LANGUAGE sql
    AS $$
    DELETE FROM mission_stats;
    DELETE FROM mission_confidence_minutes;
    INSERT INTO mission_stats (mission_id, slot, contracts, planned, awaiting_approval, executing, verified, violated,
                               rolled_back, failed, rejected, tier_1, tier_2, tier_3, executed, first_contract_at,
                               last_contract_at, confidence_sum, snapshots, snapshots_restored, benchmarks,
                               benchmarks_failed, approvals, chat_messages, tasks, events)
    SELECT m.id, 0, c.contracts, c.planned, c.awaiting_approval, c.executing, c.verified, c.violated, c.rolled_back,
           c.failed, c.rejected, c.tier_1, c.tier_2, c.tier_3, c.executed, c.first_at, c.last_at,
           coalesce(c.confidence_sum, 0),
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
                 min(created_at) AS first_at, max(created_at) AS last_at,
                 sum(confidence) AS confidence_sum
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
    INSERT INTO mission_confidence_minutes (mission_id, minute, slot, contracts, confidence_sum)
    SELECT mission_id, date_trunc('minute', created_at), 0, count(*), sum(confidence)
      FROM action_contracts GROUP BY 1, 2;
    $$;

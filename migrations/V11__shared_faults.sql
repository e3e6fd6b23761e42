-- Faults set through /api/admin/faults, shared by every replica of the backend:
-- chaos or sabotage set on one replica applies to all, so a scenario can run
-- against a load-balanced deployment. One row per scope: '*' for every mission,
-- or a mission's id. Each replica keeps the chaos rates in memory (reloaded on
-- NOTIFY grace_faults and every second); a sabotaged verification takes its
-- count from here inside its own transaction, so a verification that rolls back
-- gives it back and two replicas never use the same one.
CREATE TABLE fault_settings (
    scope               text PRIMARY KEY
                        CHECK (scope = '*' OR scope ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    sabotage_remaining  integer CHECK (sabotage_remaining >= 0),
    chaos_rate          double precision CHECK (chaos_rate BETWEEN 0 AND 1),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

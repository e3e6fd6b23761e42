-- The rules of single columns on the tables every request writes become
-- domains: the same rules, checked on every row, but prepared once per session.
--
-- PostgreSQL keeps a table's CHECK constraints as stored node text and, on
-- every statement that writes the table, reads that text back and plans each
-- expression before the first row (ExecRelCheck: stringToNode, then
-- expression_planner). A tier-1 report writes five tables in one statement
-- and paid ~15,000 characters of such text each time: under
-- scripts/bench-backend's tier-1 load `perf` put 11% of all PostgreSQL CPU in
-- ExecConstraints, of which under 2% was checking rows. A domain's checks
-- live in the session's type cache, already planned.
--
-- Rules over several columns stay table CHECKs (a tier at least its policy's,
-- a chat message's role and its key or reply, a task's kind and contract).
-- Tables written rarely (missions, approvals, snapshots, baselines, the log)
-- keep theirs. Changing a column's type rewrites its table once, re-checking
-- every row under the domain.

CREATE DOMAIN short_text AS text CHECK (length(VALUE) BETWEEN 1 AND 200);
COMMENT ON DOMAIN short_text IS 'an idempotency key, a session id or a resource name: 1 to 200 characters';
CREATE DOMAIN identifier AS text CHECK (length(VALUE) <= 63 AND VALUE ~ '^[a-z][a-z0-9_]*$');
CREATE DOMAIN event_type AS text CHECK (VALUE ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$');
CREATE DOMAIN json_object AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');
CREATE DOMAIN tier AS smallint CHECK (VALUE BETWEEN 1 AND 3);
CREATE DOMAIN confidence AS double precision CHECK (VALUE BETWEEN 0 AND 1);
CREATE DOMAIN confidence_path AS text CHECK (VALUE IN ('high', 'medium', 'low'));
CREATE DOMAIN severity AS text CHECK (VALUE IN ('low', 'medium', 'high', 'critical'));
CREATE DOMAIN contract_status AS text
    CHECK (VALUE IN ('planned', 'awaiting_approval', 'executing', 'verified', 'violated', 'rolled_back', 'failed',
                     'rejected'));
-- Empty until the contract is sealed, then the SHA-256 of its terms.
CREATE DOMAIN contract_digest AS text CHECK (VALUE = '' OR (length(VALUE) = 64 AND VALUE ~ '^[0-9a-f]*$'));
CREATE DOMAIN benchmark_kind AS text CHECK (VALUE IN ('smoke', 'regression'));
CREATE DOMAIN stats_slot AS smallint CHECK (VALUE BETWEEN 0 AND 15);
CREATE DOMAIN chat_role AS text CHECK (VALUE IN ('user', 'assistant'));
CREATE DOMAIN task_kind AS text CHECK (VALUE IN ('submitted', 'manual_remediation'));
CREATE DOMAIN task_title AS text CHECK (length(VALUE) BETWEEN 1 AND 500);
CREATE DOMAIN task_status AS text CHECK (VALUE IN ('queued', 'running', 'completed', 'failed', 'cancelled'));
CREATE DOMAIN attempts AS integer CHECK (VALUE >= 0);

ALTER TABLE action_contracts
    DROP CONSTRAINT action_contracts_idempotency_key_check,
    DROP CONSTRAINT action_contracts_error_type_check,
    DROP CONSTRAINT action_contracts_severity_check,
    DROP CONSTRAINT action_contracts_policy_tier_check,
    DROP CONSTRAINT action_contracts_confidence_check,
    DROP CONSTRAINT action_contracts_confidence_path_check,
    DROP CONSTRAINT action_contracts_contract_digest_check,
    DROP CONSTRAINT action_contracts_status_check,
    DROP CONSTRAINT action_contracts_check,
    ALTER COLUMN idempotency_key TYPE short_text,
    ALTER COLUMN error_type TYPE identifier,
    ALTER COLUMN severity TYPE severity,
    ALTER COLUMN policy_tier TYPE tier,
    ALTER COLUMN tier TYPE tier,
    ALTER COLUMN confidence TYPE confidence,
    ALTER COLUMN confidence_path TYPE confidence_path,
    ALTER COLUMN contract_digest TYPE contract_digest,
    ALTER COLUMN status TYPE contract_status,
    ADD CONSTRAINT action_contracts_check CHECK (tier >= policy_tier);

ALTER TABLE managed_resources
    DROP CONSTRAINT managed_resources_name_check,
    DROP CONSTRAINT managed_resources_state_check,
    ALTER COLUMN name TYPE short_text,
    ALTER COLUMN state TYPE json_object;

ALTER TABLE action_events
    DROP CONSTRAINT action_events_event_type_check,
    ALTER COLUMN event_type TYPE event_type;

ALTER TABLE benchmark_runs
    DROP CONSTRAINT benchmark_runs_kind_check,
    ALTER COLUMN kind TYPE benchmark_kind;

ALTER TABLE mission_stats
    DROP CONSTRAINT mission_stats_slot_check,
    ALTER COLUMN slot TYPE stats_slot;

ALTER TABLE mission_confidence_minutes
    DROP CONSTRAINT mission_confidence_minutes_slot_check,
    ALTER COLUMN slot TYPE stats_slot;

ALTER TABLE chat_messages
    DROP CONSTRAINT chat_messages_idempotency_key_check,
    DROP CONSTRAINT chat_messages_session_id_check,
    DROP CONSTRAINT chat_messages_role_check,
    ALTER COLUMN idempotency_key TYPE short_text,
    ALTER COLUMN session_id TYPE short_text,
    ALTER COLUMN role TYPE chat_role;

ALTER TABLE tasks
    DROP CONSTRAINT tasks_kind_check,
    DROP CONSTRAINT tasks_title_check,
    DROP CONSTRAINT tasks_status_check,
    DROP CONSTRAINT tasks_attempts_check,
    DROP CONSTRAINT tasks_idempotency_key_check,
    ALTER COLUMN kind TYPE task_kind,
    ALTER COLUMN title TYPE task_title,
    ALTER COLUMN status TYPE task_status,
    ALTER COLUMN attempts TYPE attempts,
    ALTER COLUMN idempotency_key TYPE short_text;

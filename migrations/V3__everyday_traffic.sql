-- The everyday traffic the load hits: chat and tasks. Every client write carries
-- the client's idempotency key (UNIQUE), so a retried request never writes twice
-- and C7 can match stored rows against the keys clients saw acknowledged.

CREATE TABLE chat_messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mission_id       uuid NOT NULL REFERENCES missions (id),
    session_id       text NOT NULL CHECK (length(session_id) BETWEEN 1 AND 200),
    role             text NOT NULL CHECK (role IN ('user', 'assistant')),
    content          text NOT NULL,
    -- A user message is what a client sent (it has a key); an assistant message
    -- is the reply to exactly one user message.
    idempotency_key  text UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    reply_to         uuid UNIQUE REFERENCES chat_messages (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'user' AND idempotency_key IS NOT NULL AND reply_to IS NULL)
        OR (role = 'assistant' AND idempotency_key IS NULL AND reply_to IS NOT NULL))
);
-- Leads with mission_id, so it also serves the mission FOREIGN KEY.
CREATE INDEX chat_messages_session_idx ON chat_messages (mission_id, session_id, created_at);

CREATE TABLE tasks (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mission_id       uuid NOT NULL REFERENCES missions (id),
    -- Set for the manual-remediation task a rejected contract falls back to.
    contract_id      uuid REFERENCES action_contracts (id),
    kind             text NOT NULL DEFAULT 'submitted' CHECK (kind IN ('submitted', 'manual_remediation')),
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    payload          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    result           jsonb,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claimed_by       text,
    idempotency_key  text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz,
    CHECK ((kind = 'manual_remediation') = (contract_id IS NOT NULL))
);
CREATE INDEX tasks_mission_id_idx ON tasks (mission_id);
CREATE INDEX tasks_contract_id_idx ON tasks (contract_id);
-- The task runner claims the oldest queued task with FOR UPDATE SKIP LOCKED.
CREATE INDEX tasks_queued_idx ON tasks (created_at) WHERE status = 'queued';

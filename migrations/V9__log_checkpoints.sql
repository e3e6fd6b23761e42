-- Where the last proof of the log chain ended, so the next one re-hashes only
-- what is new (DESIGN.md, "Verification that scales with what is new").
-- A verifier that proved the chain from genesis (or from an earlier checkpoint)
-- up to an entry records that entry's seq and hash here. The next verification
-- starts after the newest checkpoint whose hash the log still holds; a
-- checkpoint the log no longer matches is itself a finding (the log was
-- rewritten under it). The FOREIGN KEY keeps a checkpointed entry from being
-- deleted without the constraint being dropped first.
--
-- A checkpoint is only as trustworthy as the database it sits in: whoever owns
-- the log can rewrite it and its checkpoints together. Verifiers therefore also
-- keep the head they proved outside the database (`--anchors FILE`), and the
-- two must agree with the log.
CREATE TABLE log_checkpoints (
    seq          bigint PRIMARY KEY REFERENCES immutable_log (seq),
    entry_hash   text NOT NULL CHECK (entry_hash ~ '^[0-9a-f]{64}$'),
    verified_at  timestamptz NOT NULL DEFAULT now(),
    -- Which verifier proved it (grace health, grace verify, the backend).
    verified_by  text NOT NULL CHECK (length(verified_by) BETWEEN 1 AND 200)
);

-- An event's log_seq is unique among the events that have one; the pending
-- events (log_seq NULL) are no longer entries of that unique index.
--
-- As in V19, every new event wrote a NULL into action_events_log_seq_key, on
-- the same right-most leaf pages. Worse, that index could answer the
-- sequencer's queue (`log_seq IS NULL ... ORDER BY id LIMIT n`): on a young
-- database, before the first ANALYZE, PostgreSQL estimated a few hundred
-- pending events, fetched them all through it in a bitmap scan and sorted
-- them to take the oldest n — a cost that grows with the backlog, so under
-- load the sequencer fell further behind the more it lagged (a fresh
-- cluster under scripts/bench-backend's tier-1 load: 55,000 events behind
-- after 20 s, draining at 1,000 a second). Without NULLs in it, the queue's
-- only index is action_events_pending_idx, read in id order until n.
-- The mesh's `log_seq > $1 ORDER BY log_seq` still uses this one.

ALTER TABLE action_events DROP CONSTRAINT action_events_log_seq_key;
CREATE UNIQUE INDEX action_events_log_seq_key ON action_events (log_seq) WHERE log_seq IS NOT NULL;

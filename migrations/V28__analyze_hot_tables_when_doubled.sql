-- The four tables every request appends to are analyzed when they have doubled,
-- not at every 10 % of growth (PostgreSQL's default).
--
-- Under a steady load they grow 10 % a minute for the first million rows, so
-- autovacuum analyzed all four every minute, back to back (0.3-0.4 CPU s each,
-- 1-2 s elapsed; 14 of autovacuum's 17 CPU s in a 10-minute soak), and the soak's
-- worst seconds (p99 over 1 s) came in the seconds right after, on a machine
-- already 90 % busy: the analyses' own CPU, and then every pooled session
-- re-plans its prepared statements on the table, since new statistics make
-- PostgreSQL re-plan a prepared statement before its next use.
--
-- The statements on these tables find rows by key or read a queue through its
-- index with bitmap scans off; the planner scales a table's row count by its
-- current size between analyses, so statistics from when the table was half
-- its size plan them the same.
ALTER TABLE chat_messages SET (autovacuum_analyze_scale_factor = 1.0);
ALTER TABLE action_events SET (autovacuum_analyze_scale_factor = 1.0);
ALTER TABLE immutable_log SET (autovacuum_analyze_scale_factor = 1.0);
ALTER TABLE tasks SET (autovacuum_analyze_scale_factor = 1.0);

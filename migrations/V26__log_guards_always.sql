-- The log's guards fire in every session, like the foreign keys' (V10). A
-- trigger enabled the ordinary way fires only while session_replication_role
-- is `origin`: a superuser's session set to `replica` skipped them, updated an
-- entry of the log, and every proof but --full passed afterwards. Enabled
-- ALWAYS they fire in every mode; `grace health` fails while one is not.
-- Unlike the foreign keys' internal triggers these are the owner's to set,
-- so this holds on a managed service too. A bulk loader that switches them
-- off calls grace_enforce_log_guards_always() when it switches them back on
-- (`ALTER TABLE … ENABLE TRIGGER ALL` alone leaves them ORIGIN).
CREATE FUNCTION grace_enforce_log_guards_always() RETURNS void
    LANGUAGE plpgsql
    AS $$
    BEGIN
        ALTER TABLE immutable_log ENABLE ALWAYS TRIGGER immutable_log_chain;
        ALTER TABLE immutable_log ENABLE ALWAYS TRIGGER immutable_log_append_only;
        ALTER TABLE immutable_log ENABLE ALWAYS TRIGGER immutable_log_no_truncate;
    END
    $$;

SELECT grace_enforce_log_guards_always();

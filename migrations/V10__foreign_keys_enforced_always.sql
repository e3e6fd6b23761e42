-- Foreign keys that session_replication_role cannot skip (DESIGN.md, C1).
-- Postgres enforces a FOREIGN KEY with internal triggers that, like every
-- trigger, fire only while session_replication_role is `origin`: a session
-- that sets it to `replica` writes orphans unchecked. Enabled ALWAYS, they
-- fire in every mode, so a validated key whose triggers are all ALWAYS proves
-- C1 for every row without scanning any (only disabling the triggers, which a
-- catalog check sees for as long as they stay off, gets around it).
--
-- Only a superuser may change internal triggers. Run by one, this migration
-- sets them; run by an ordinary owner (a managed service), it leaves them and
-- says so, and C1 then scans those keys' rows instead. Any later migration that
-- adds a FOREIGN KEY calls grace_enforce_foreign_keys_always() again; bulk
-- loaders that disable triggers call it when they re-enable them.
CREATE FUNCTION grace_enforce_foreign_keys_always() RETURNS integer
    LANGUAGE plpgsql
    AS $$
    DECLARE
        t record;
        changed integer := 0;
    BEGIN
        IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            RAISE NOTICE 'not a superuser: foreign-key triggers left as they are (C1 scans those keys)';
            RETURN 0;
        END IF;
        FOR t IN
            SELECT tg.tgrelid::regclass AS tbl, tg.tgname
              FROM pg_trigger tg
              JOIN pg_constraint c ON c.oid = tg.tgconstraint
              JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE c.contype = 'f' AND n.nspname IN ('public', 'control') AND tg.tgenabled <> 'A'
        LOOP
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.tbl, t.tgname);
            changed := changed + 1;
        END LOOP;
        RETURN changed;
    END
    $$;

SELECT grace_enforce_foreign_keys_always();

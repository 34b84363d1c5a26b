-- Resources deleted from each directory (issue 20). Ids are never reused, so an id here is
-- certainly one of the directory's own: a provider's full sync removes from its remote the
-- objects whose externalId is such an id (created there before a crash lost the provider's
-- link to them, or by an earlier provider of the same directory), and leaves every object it
-- cannot prove to be Roster's alone. A view like the others: one partition per generation,
-- rebuilt with the rest.
CREATE TABLE retired (
    gen integer NOT NULL,
    directory text COLLATE "C" NOT NULL,
    id uuid NOT NULL,
    PRIMARY KEY (gen, directory, id)
) PARTITION BY LIST (gen);

-- Every generation that exists gets its partition (as V4 did for providers).
DO $$
DECLARE
    r record;
    g integer;
BEGIN
    FOR r IN SELECT c.relname, EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AS attached
             FROM pg_class c
             WHERE c.relkind = 'r' AND c.relname ~ '^users_g[0-9]+$' LOOP
        g := substring(r.relname FROM 8)::integer;
        IF r.attached THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF retired FOR VALUES IN (%s)',
                           'retired_g' || g, g);
        ELSE
            EXECUTE format('CREATE TABLE %I (LIKE retired INCLUDING DEFAULTS, CONSTRAINT %I CHECK (gen = %s))',
                           'retired_g' || g, 'retired_g' || g || '_gen', g);
        END IF;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION roster_view_tables() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['directories', 'users', 'user_emails', 'groups', 'group_members',
                 'sources', 'admin_tokens', 'providers', 'retired']
$$;

-- Outbound providers (issue 6).
--
-- The providers' configuration is a view like the sources: folded from `provider.*` events,
-- one JSON document per provider (secrets inside are sealed by the server's key), in a table
-- partitioned by generation so that a rebuild rebuilds it with the rest.
CREATE TABLE providers (
    gen integer NOT NULL,
    directory text COLLATE "C" NOT NULL,
    id uuid NOT NULL,
    view text NOT NULL,
    PRIMARY KEY (gen, directory, id)
) PARTITION BY LIST (gen);

-- Every generation that exists gets its partition: attached ones an attached partition, a
-- rebuild's detached tables a detached table.
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
            EXECUTE format('CREATE TABLE %I PARTITION OF providers FOR VALUES IN (%s)',
                           'providers_g' || g, g);
        ELSE
            EXECUTE format('CREATE TABLE %I (LIKE providers INCLUDING DEFAULTS, CONSTRAINT %I CHECK (gen = %s))',
                           'providers_g' || g, 'providers_g' || g || '_gen', g);
        END IF;
    END LOOP;
END;
$$;

-- The tables every generation has a partition of; the functions below go through it, so a
-- new view table is added here once.
CREATE FUNCTION roster_view_tables() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['directories', 'users', 'user_emails', 'groups', 'group_members',
                 'sources', 'admin_tokens', 'providers']
$$;

CREATE OR REPLACE FUNCTION roster_create_generation(g integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY roster_view_tables() LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%s)', t || '_g' || g, t, g);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION roster_drop_generation(g integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY roster_view_tables() LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', t || '_g' || g);
    END LOOP;
    DELETE FROM positions WHERE gen = g;
    DELETE FROM chain_heads WHERE gen = g;
END;
$$;

CREATE OR REPLACE FUNCTION roster_create_detached_generation(g integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY roster_view_tables() LOOP
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS, CONSTRAINT %I CHECK (gen = %s))',
                       t || '_g' || g, t, t || '_g' || g || '_gen', g);
    END LOOP;
END;
$$;

-- Each provider's consumer state. Not a view: a rebuild leaves it alone, and it is written
-- only by the provider's consumer, in one transaction per checkpoint: the log position it has
-- carried to the remote (every change below it is on the remote or in `pending`), the work
-- still pending (object by object, with attempts and last errors), and the last full sync.
CREATE TABLE provider_state (
    provider uuid PRIMARY KEY,
    directory text COLLATE "C" NOT NULL,
    log_partition integer NOT NULL,
    next_position bigint NOT NULL,
    state text NOT NULL
);

-- The provider's map of local id to remote id, written in the same transaction as its state.
CREATE TABLE provider_links (
    provider uuid NOT NULL,
    kind smallint NOT NULL,
    local_id uuid NOT NULL,
    remote_id text NOT NULL,
    PRIMARY KEY (provider, kind, local_id)
);

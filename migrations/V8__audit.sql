-- The audit projection (issue 14): one row per event of every valid record, written in the
-- same transaction as the views (exactly once with them), holding what an audit search
-- filters on and where the event lies in the log; the events themselves are read back from
-- the log when they are shown. A view like the others: one partition per generation,
-- rebuilt with the rest by `roster rebuild`.
--
-- `entry` numbers the events of one log partition from 0, in log order: a search's cursor
-- names, per partition, the entry it goes on from (as the memory index does). `name` is the
-- resource's name at the event, `previous` the entry of the event that last set the
-- resource's whole document before it (what the event's changes are computed against), and
-- `document` whether this event set it. `correlation` is a 64-bit key of the request id.
CREATE TABLE audit_events (
    gen integer NOT NULL,
    log_partition integer NOT NULL,
    entry bigint NOT NULL,
    position bigint NOT NULL,
    event smallint NOT NULL,
    time_ms bigint NOT NULL,
    type text COLLATE "C" NOT NULL,
    resource_type text COLLATE "C" NOT NULL,
    resource uuid NOT NULL,
    version bigint NOT NULL,
    actor_kind text COLLATE "C" NOT NULL,
    actor text COLLATE "C",
    directory text COLLATE "C" NOT NULL,
    source text COLLATE "C",
    token text COLLATE "C",
    ip text COLLATE "C",
    user_agent text,
    correlation bigint NOT NULL,
    name text,
    document boolean NOT NULL,
    previous bigint,
    PRIMARY KEY (gen, log_partition, entry)
) PARTITION BY LIST (gen);

-- The next entry of each partition, kept with the position the fold has reached.
ALTER TABLE positions ADD COLUMN next_entry bigint NOT NULL DEFAULT 0;

-- The lists a search starts from: one resource's, actor's, token's or request's events in log
-- order, and the first event of a partition at or after a time.
CREATE INDEX audit_by_resource ON audit_events (resource, log_partition, entry);
CREATE INDEX audit_by_actor ON audit_events (actor, log_partition, entry);
CREATE INDEX audit_by_token ON audit_events (token, log_partition, entry);
CREATE INDEX audit_by_correlation ON audit_events (correlation, log_partition, entry);
CREATE INDEX audit_by_time ON audit_events (log_partition, time_ms);

-- Views folded before this migration have no audit rows for the history they reflect: per
-- generation and partition, the first position the audit projection covers. Empty for a
-- generation built from the log's start (every fresh database, every rebuild); a gap is
-- reported at start-up until `roster rebuild` folds the history.
CREATE TABLE audit_coverage (
    gen integer NOT NULL,
    log_partition integer NOT NULL,
    first_position bigint NOT NULL,
    PRIMARY KEY (gen, log_partition)
);
INSERT INTO audit_coverage (gen, log_partition, first_position)
    SELECT gen, log_partition, next_position FROM positions WHERE next_position > 0;

-- Every generation that exists gets its partition (as V6 did for retired).
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
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES IN (%s)',
                           'audit_events_g' || g, g);
        ELSE
            EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS, CONSTRAINT %I CHECK (gen = %s))',
                           'audit_events_g' || g, 'audit_events_g' || g || '_gen', g);
        END IF;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION roster_view_tables() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['directories', 'users', 'user_emails', 'groups', 'group_members',
                 'sources', 'admin_tokens', 'providers', 'retired', 'audit_events']
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
    DELETE FROM audit_coverage WHERE gen = g;
END;
$$;

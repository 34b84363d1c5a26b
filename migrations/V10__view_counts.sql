-- How many users and groups each directory holds, per owning source ('' for none), kept by the
-- fold in the same transaction as the rows it counts (and written by a rebuild's bulk load for
-- its generation): a list without a filter, and the console's overview, read its total here
-- instead of counting a million rows. The fold adds signed changes with INSERT ... ON CONFLICT,
-- whose inserted row carries the change (a -1 for a delete): so no CHECK on `n`, which
-- PostgreSQL would test on that row before the conflict turned it into an update.
CREATE TABLE view_counts (
    gen integer NOT NULL,
    directory text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('user', 'group')),
    owner text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (gen, directory, kind, owner)
);

INSERT INTO view_counts (gen, directory, kind, owner, n)
SELECT gen, directory, 'user', coalesce(owner, ''), count(*) FROM users
GROUP BY gen, directory, coalesce(owner, '');

INSERT INTO view_counts (gen, directory, kind, owner, n)
SELECT gen, directory, 'group', coalesce(owner, ''), count(*) FROM groups
GROUP BY gen, directory, coalesce(owner, '');

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
    DELETE FROM view_counts WHERE gen = g;
END;
$$;

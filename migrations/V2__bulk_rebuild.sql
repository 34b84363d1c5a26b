-- A rebuild folds the log in memory and loads the result in bulk: into plain tables with no
-- index (COPY is fastest then), whose indexes are built once the rows are in, and which are
-- attached as generation `g`'s partitions afterwards. The CHECK constraint proves the
-- partition constraint, so attaching does not scan the rows; see projections/src/pg/bulk.rs.
CREATE FUNCTION roster_create_detached_generation(g integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['directories', 'users', 'user_emails', 'groups', 'group_members',
                             'sources', 'admin_tokens'] LOOP
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS, CONSTRAINT %I CHECK (gen = %s))',
                       t || '_g' || g, t, t || '_g' || g || '_gen', g);
    END LOOP;
END;
$$;

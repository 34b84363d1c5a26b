-- The first event of a log partition at or after a time (where an audit search's time range
-- starts, each hour of the console's activity chart) was found by walking the partition in
-- entry order until a row's time reached it: every row of the partition when none did, as for
-- the hour under way. Each row now carries the latest time among its partition's events up to
-- and including it (`max_time_ms`: never decreasing along the entries, even when writers'
-- clocks disagree, as the memory index's `max_time`), indexed with the entry, so that the first
-- entry at or after a time is the index's first row at or after it: one probe. `positions`
-- keeps each partition's latest time for the fold to go on from.
ALTER TABLE audit_events ADD COLUMN max_time_ms bigint;
ALTER TABLE positions ADD COLUMN max_time_ms bigint;

-- Every generation's rows, those of a rebuild's detached table too (which `LIKE` did not give
-- the column).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname, EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AS attached
             FROM pg_class c
             WHERE c.relkind = 'r' AND c.relname ~ '^audit_events_g[0-9]+$' LOOP
        IF NOT r.attached THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN max_time_ms bigint', r.relname);
        END IF;
        EXECUTE format('UPDATE %I a SET max_time_ms = m.t FROM ('
                       '  SELECT log_partition, entry, max(time_ms) OVER ('
                       '    PARTITION BY log_partition ORDER BY entry) AS t FROM %I) m '
                       'WHERE a.log_partition = m.log_partition AND a.entry = m.entry',
                       r.relname, r.relname);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN max_time_ms SET NOT NULL', r.relname);
    END LOOP;
END;
$$;
ALTER TABLE audit_events ALTER COLUMN max_time_ms SET NOT NULL;

UPDATE positions p SET max_time_ms = (
    SELECT max(a.time_ms) FROM audit_events a
    WHERE a.gen = p.gen AND a.log_partition = p.log_partition);

DROP INDEX audit_by_time;
CREATE INDEX audit_by_time ON audit_events (log_partition, max_time_ms, entry);

-- The counts of V10 are kept by the fold: a process of an older version that folded batches
-- after V10 was applied (a rolling upgrade) did not count them. Counted again here from the
-- active generation's rows. From now on an older process cannot fold at all (its audit rows
-- lack `max_time_ms`): its batches fail and are folded by the processes of this version.
DELETE FROM view_counts WHERE gen = (SELECT active FROM roster_generation);
INSERT INTO view_counts (gen, directory, kind, owner, n)
SELECT gen, directory, 'user', coalesce(owner, ''), count(*) FROM users
WHERE gen = (SELECT active FROM roster_generation)
GROUP BY gen, directory, coalesce(owner, '');
INSERT INTO view_counts (gen, directory, kind, owner, n)
SELECT gen, directory, 'group', coalesce(owner, ''), count(*) FROM groups
WHERE gen = (SELECT active FROM roster_generation)
GROUP BY gen, directory, coalesce(owner, '');

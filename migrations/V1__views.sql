-- Roster's PostgreSQL projections: the user, group, source and token views, and the log
-- position they reflect. Applied at start by refinery; every statement here must stay valid
-- for a database that later migrations change, so later changes go in new files.
--
-- Generations. Every view table is partitioned by `gen`, the generation of the views. The
-- generation in `roster_generation.active` is the one that serves. `roster rebuild` folds the
-- whole log into a fresh generation (new partitions) while the active one keeps serving, then
-- makes it active in one transaction and drops the old partitions. Positions and chain heads
-- are per generation too, so each generation is a complete, self-consistent fold.

-- The one row saying which generation serves, and which (if any) is being built.
CREATE TABLE roster_generation (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    active integer NOT NULL,
    building integer
);
INSERT INTO roster_generation (active) VALUES (1);

-- Per generation and log partition: the first position the views do not reflect yet.
-- Written in the same transaction as the views, so a redelivered entry changes nothing.
CREATE TABLE positions (
    gen integer NOT NULL,
    log_partition integer NOT NULL,
    next_position bigint NOT NULL,
    PRIMARY KEY (gen, log_partition)
);

-- Per generation and directory: the head of the directory's chain of valid records
-- (the directory-sequence rule, docs/adr/0001).
CREATE TABLE chain_heads (
    gen integer NOT NULL,
    directory text NOT NULL,
    seq bigint NOT NULL,
    record_id uuid,
    PRIMARY KEY (gen, directory)
);

-- A directory's own record (`directory.created`), as JSON.
CREATE TABLE directories (
    gen integer NOT NULL,
    name text NOT NULL,
    meta text,
    PRIMARY KEY (gen, name)
) PARTITION BY LIST (gen);

-- Users. `resource` is the stored SCIM document exactly as folded (compact JSON text, so the
-- bytes served are the bytes stored); the other columns are copied out of it for the indexes.
-- `*_ci` columns hold Roster's case folding (the same function the memory store uses), so a
-- case-insensitive comparison is an equality on an ordinary b-tree index. Times are kept in
-- nanoseconds (exact round trip) and milliseconds (what `meta` shows, for filters and sort).
CREATE TABLE users (
    gen integer NOT NULL,
    directory text NOT NULL,
    id uuid NOT NULL,
    owner text,
    user_name text,
    user_name_ci text,
    display_name text,
    display_name_ci text,
    external_id text,
    resource text NOT NULL,
    password_hash text,
    version bigint NOT NULL,
    created_ns bigint NOT NULL,
    modified_ns bigint NOT NULL,
    created_ms bigint NOT NULL,
    modified_ms bigint NOT NULL,
    PRIMARY KEY (gen, directory, id)
) PARTITION BY LIST (gen);
CREATE INDEX users_by_name ON users (gen, directory, user_name_ci COLLATE "C");
CREATE INDEX users_by_external ON users (gen, directory, external_id COLLATE "C");
CREATE INDEX users_by_display ON users (gen, directory, display_name_ci COLLATE "C");
CREATE INDEX users_by_owner ON users (gen, directory, owner, id);
CREATE INDEX users_by_modified ON users (gen, directory, modified_ms);

-- Every `emails.value` of a user, folded: `emails.value eq "..."` is an index scan.
CREATE TABLE user_emails (
    gen integer NOT NULL,
    directory text NOT NULL,
    user_id uuid NOT NULL,
    value_ci text NOT NULL,
    PRIMARY KEY (gen, directory, user_id, value_ci)
) PARTITION BY LIST (gen);
CREATE INDEX user_emails_by_value ON user_emails (gen, directory, value_ci COLLATE "C");

-- Groups; members live in group_members.
CREATE TABLE groups (
    gen integer NOT NULL,
    directory text NOT NULL,
    id uuid NOT NULL,
    owner text,
    display_name text,
    display_name_ci text,
    external_id text,
    resource text NOT NULL,
    version bigint NOT NULL,
    created_ns bigint NOT NULL,
    modified_ns bigint NOT NULL,
    created_ms bigint NOT NULL,
    modified_ms bigint NOT NULL,
    PRIMARY KEY (gen, directory, id)
) PARTITION BY LIST (gen);
CREATE INDEX groups_by_name ON groups (gen, directory, display_name_ci COLLATE "C");
CREATE INDEX groups_by_external ON groups (gen, directory, external_id COLLATE "C");
CREATE INDEX groups_by_owner ON groups (gen, directory, owner, id);

-- Direct group membership; member_type 0 is a user, 1 a group.
CREATE TABLE group_members (
    gen integer NOT NULL,
    directory text NOT NULL,
    group_id uuid NOT NULL,
    member_id uuid NOT NULL,
    member_type smallint NOT NULL,
    PRIMARY KEY (gen, directory, group_id, member_id, member_type)
) PARTITION BY LIST (gen);
CREATE INDEX group_members_by_member ON group_members (gen, directory, member_id);

-- Inbound sources (with their token hashes) and admin tokens, as JSON.
CREATE TABLE sources (
    gen integer NOT NULL,
    directory text NOT NULL,
    id uuid NOT NULL,
    slug text NOT NULL,
    view text NOT NULL,
    PRIMARY KEY (gen, directory, id)
) PARTITION BY LIST (gen);
CREATE INDEX sources_by_slug ON sources (gen, slug);

CREATE TABLE admin_tokens (
    gen integer NOT NULL,
    directory text NOT NULL,
    id uuid NOT NULL,
    view text NOT NULL,
    PRIMARY KEY (gen, directory, id)
) PARTITION BY LIST (gen);

-- Creates the partitions of generation `g` (the first at migration, the others by a rebuild).
CREATE FUNCTION roster_create_generation(g integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['directories', 'users', 'user_emails', 'groups', 'group_members',
                             'sources', 'admin_tokens'] LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%s)', t || '_g' || g, t, g);
    END LOOP;
END;
$$;

-- Drops the partitions, positions and chain heads of generation `g`.
CREATE FUNCTION roster_drop_generation(g integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['directories', 'users', 'user_emails', 'groups', 'group_members',
                             'sources', 'admin_tokens'] LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', t || '_g' || g);
    END LOOP;
    DELETE FROM positions WHERE gen = g;
    DELETE FROM chain_heads WHERE gen = g;
END;
$$;

SELECT roster_create_generation(1);

-- The key each user's personal data is sealed under in the log (docs/adr/0014): a writer that
-- starts from these views seals the user's next document with it. Users folded before this
-- have none until a `roster rebuild`, or until their next write gives them one.
ALTER TABLE users ADD COLUMN data_key uuid;

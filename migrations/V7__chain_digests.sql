-- The digest of each directory's last valid record, which the next record commits to
-- (docs/adr/0012). Heads written before this have none: a writer then starts the link at
-- its next record.
ALTER TABLE chain_heads ADD COLUMN digest bytea;

-- What each provider's remote last answered per object (issue 13): fingerprints of the
-- document sent and of the remote's answer. A full sync treats an object as unchanged while
-- the remote still lists what it answered then, so a remote that normalises what it stores
-- (drops an email's type, keeps a single email) is not rewritten at every full sync. Written
-- in the same transaction as the provider's links and state; not a view.
CREATE TABLE provider_echoes (
    provider uuid NOT NULL,
    kind smallint NOT NULL,
    local_id uuid NOT NULL,
    sent bigint NOT NULL,
    answered bigint NOT NULL,
    PRIMARY KEY (provider, kind, local_id)
);

-- Version 4: notifications. The outbox holds the notices that decisions write with their
-- charge, until a worker has delivered them; the inbox is the list each tenant reads.
--
-- notify_outbox   one row per notice, keyed by its id (`ntf_...`, `Notice::id`), so that a
--                 notice proposed by several processes is kept once.
--   notice        the notice as JSON (serde_json of `limiter_core::notify::Notice`)
--   state         'pending', 'claimed', 'delivered' or 'failed'
--   due           not to be claimed before (microseconds since the Unix epoch); a retry
--                 moves it to the retry time
--   attempt       how many times it was claimed: a settlement must name the current one
--   worker        the worker of the last claim, for operators
--   lease_until   when the last claim's lease ends; a claimed row past it is claimed again
--   settled_at    when it was delivered or given up on: what pruning goes by
--   last_error    what the last failed attempt said
-- notify_outbox_ready covers only rows still to deliver: a claim walks it in (due, id) order
-- from the earliest, over pending rows and claimed rows whose lease may have ended (a claimed
-- row is never due after its claim), and settled rows never slow it down.
CREATE TABLE notify_outbox (
    id          TEXT    NOT NULL PRIMARY KEY,
    notice      TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    due         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    worker      TEXT,
    lease_until INTEGER,
    settled_at  INTEGER,
    last_error  TEXT
);

CREATE INDEX notify_outbox_ready ON notify_outbox (due, id)
    WHERE state IN ('pending', 'claimed');
CREATE INDEX notify_outbox_settled ON notify_outbox (settled_at)
    WHERE settled_at IS NOT NULL;

-- notify_inbox    one row per tenant and notice id (`limiter_core::notify::InboxItem`); times
--                 in microseconds since the Unix epoch, read_at NULL while unread. Listed per
--                 tenant newest first (at, then id, descending); the partial index serves the
--                 unread list and count.
CREATE TABLE notify_inbox (
    tenant  TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    policy  TEXT    NOT NULL,
    message TEXT    NOT NULL,
    upgrade TEXT,
    at      INTEGER NOT NULL,
    read_at INTEGER,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE INDEX notify_inbox_tenant_at ON notify_inbox (tenant, at, id);
CREATE INDEX notify_inbox_unread ON notify_inbox (tenant, at, id) WHERE read_at IS NULL;

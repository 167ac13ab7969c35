-- Version 3: events (denials, bypasses, threshold crossings, ...) and their daily aggregates.
--
-- limit_events          one row per event, in append order (id); times in microseconds since
--                       the Unix epoch. Indexed by (tenant, at) for one tenant's events and
--                       (kind, window_start) for the events of a kind in a window.
-- limit_events_daily    per local day (of the log's time zone), tenant and policy ('' for
--                       none): denials, and the highest usage of a daily quota recorded with
--                       its limit. Pruned apart from the raw events.
-- limit_event_windows   the windows in which each tenant and policy was exhausted or
--                       restored: what decides whether a restore candidate is kept.
CREATE TABLE limit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    tenant       TEXT,
    user         TEXT,
    key_id       TEXT,
    policy       TEXT,
    lim          INTEGER NOT NULL,
    remaining    INTEGER NOT NULL,
    retry_after  INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    period       INTEGER NOT NULL,
    method       TEXT,
    route        TEXT,
    network      TEXT,
    reason       TEXT
);

CREATE INDEX limit_events_tenant_at ON limit_events (tenant, at);
CREATE INDEX limit_events_kind_window ON limit_events (kind, window_start);

CREATE TABLE limit_events_daily (
    day        INTEGER NOT NULL,
    tenant     TEXT    NOT NULL,
    policy     TEXT    NOT NULL,
    denied     INTEGER NOT NULL,
    peak_used  INTEGER,
    peak_limit INTEGER,
    PRIMARY KEY (day, tenant, policy)
) WITHOUT ROWID;

CREATE TABLE limit_event_windows (
    tenant       TEXT    NOT NULL,
    policy       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    PRIMARY KEY (tenant, policy, kind, window_start)
) WITHOUT ROWID;

-- Version 2: API key records (`limiter_core::api_key::KeyRecord`). The secret is never stored:
-- only its SHA-256, which verification looks keys up by.
--
-- hash          SHA-256 of the whole key (32 bytes): the lookup key
-- tenant, id    the tenant and the key's public id, unique together
-- user_id       the user the key acts for, or NULL
-- name, start   a name for people; the prefix and the first 4 random characters
-- active        0 or 1; bypass 0 or 1
-- *_at          microseconds since the Unix epoch, or NULL (never expires, not revoked, never
--               used); revoked_at is set once and never cleared
CREATE TABLE api_keys (
    hash         BLOB    NOT NULL PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    user_id      TEXT,
    name         TEXT    NOT NULL,
    start        TEXT    NOT NULL,
    active       INTEGER NOT NULL,
    bypass       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    UNIQUE (tenant, id)
) WITHOUT ROWID;

-- Listing a tenant's keys, oldest first.
CREATE INDEX api_keys_tenant_created ON api_keys (tenant, created_at, id);

-- Version 1: the state of every key, and when it becomes indistinguishable from fresh.
--
-- key       the store key (`namespace:policy:{kind=subject}`)
-- state     `limiter_core::State::encode` bytes
-- fresh_at  `Limit::fresh_at(&state)`, microseconds since the Unix epoch: the sweep deletes
--           rows with `fresh_at <= now`, and never earlier.
CREATE TABLE limiter_state (
    key      TEXT    NOT NULL PRIMARY KEY,
    state    BLOB    NOT NULL,
    fresh_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX limiter_state_fresh_at ON limiter_state (fresh_at);

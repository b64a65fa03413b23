-- Switches that act on every run: the emergency stop. A row present is a switch on.
CREATE TABLE controls (
    name TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    at BIGINT NOT NULL
);

-- A paused run is left alone by every driver and scheduler until it is resumed.
ALTER TABLE runs ADD COLUMN paused BIGINT NOT NULL DEFAULT 0;

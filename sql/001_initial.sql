-- 001_initial: verdicts and POP/IMAP-before-SMTP grants.
-- Applied by store_migrate() inside one transaction; never edit a migration
-- that has shipped: add a new numbered file instead.

CREATE TABLE verdicts (
    id            INTEGER PRIMARY KEY,
    time_ms       INTEGER NOT NULL,             -- epoch milliseconds
    kind          TEXT    NOT NULL CHECK (kind IN ('message', 'rcpt')),
    queue_id      TEXT,
    client_ip     TEXT,
    client_ip_bin BLOB,                         -- 16 bytes, IPv4 mapped: CIDR ranges
    client_name   TEXT,
    helo          TEXT,
    sender        TEXT,                         -- '' for the null sender
    auth_user     TEXT,
    rcpt          TEXT,                         -- kind 'rcpt': the refused recipient
    recipients    TEXT    NOT NULL DEFAULT '[]',-- JSON array: accepted recipients
    stage         TEXT    NOT NULL,             -- connect helo mail rcpt data eom
    action        TEXT    NOT NULL,             -- accept tag quarantine tempfail reject
    monitor       INTEGER NOT NULL DEFAULT 0,   -- 1: only recorded, mail passed
    reply         TEXT,                         -- SMTP reply sent (or that would be)
    reasons       TEXT    NOT NULL DEFAULT '[]' -- JSON array of reason objects
);
CREATE INDEX verdicts_time   ON verdicts (time_ms);
CREATE INDEX verdicts_ip     ON verdicts (client_ip_bin, time_ms);
CREATE INDEX verdicts_queue  ON verdicts (queue_id);
CREATE INDEX verdicts_sender ON verdicts (sender COLLATE NOCASE);

CREATE TABLE grants (
    ip      TEXT    PRIMARY KEY,                -- normalised text form
    ip_bin  BLOB    NOT NULL,                   -- 16 bytes, IPv4 mapped
    user    TEXT,
    source  TEXT    NOT NULL DEFAULT 'cli',     -- cli dovecot courier qpopper
    created INTEGER NOT NULL,                   -- epoch seconds
    expires INTEGER NOT NULL                    -- epoch seconds
);

-- A counter the milter polls to know when to reload its copy of the grants
-- without reading the grants table itself on every poll.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('grants_generation', 0);
CREATE TRIGGER grants_ai AFTER INSERT ON grants BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'grants_generation';
END;
CREATE TRIGGER grants_au AFTER UPDATE ON grants BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'grants_generation';
END;
CREATE TRIGGER grants_ad AFTER DELETE ON grants BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'grants_generation';
END;

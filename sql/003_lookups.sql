-- 003_lookups: the evidence behind blocklist and SPF decisions. One row per
-- DNS check that fed a verdict; `kanjiki query --zone` and `kanjiki stats`
-- read it.
ALTER TABLE verdicts ADD COLUMN score REAL;      -- NULL: nothing was scored
ALTER TABLE verdicts ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;

CREATE TABLE lookups (
    verdict_id INTEGER NOT NULL REFERENCES verdicts (id) ON DELETE CASCADE,
    time_ms    INTEGER NOT NULL,                -- the verdict's time
    zone       TEXT    NOT NULL,                -- blocklist zone, or 'spf'
    kind       TEXT    NOT NULL,                -- ip domain uri spf
    subject    TEXT,                            -- client helo sender from uri
    query      TEXT,                            -- DNS name asked / SPF domain
    outcome    TEXT    NOT NULL,                -- listed clean refused degraded skipped; SPF result
    answer     TEXT,
    txt        TEXT,
    ttl        INTEGER,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    cached     INTEGER NOT NULL DEFAULT 0,
    weight     REAL    NOT NULL DEFAULT 0
);
CREATE INDEX lookups_verdict ON lookups (verdict_id);
CREATE INDEX lookups_zone    ON lookups (zone, time_ms);

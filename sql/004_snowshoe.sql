-- 004_snowshoe: the snowshoe detector's state (blocks, /16s, domains, text
-- fingerprints), saved by kanjiki-milter every 30 s and loaded at start,
-- read by `kanjiki clusters`. data is the entry's state in the layout of
-- the kanjiki version that wrote it; another version ignores rows whose
-- size does not match.
CREATE TABLE snowshoe (
    kind    INTEGER NOT NULL,   -- 0 block, 1 wide prefix, 2 domain, 3 fingerprint
    key     INTEGER NOT NULL,   -- the entry's 64-bit hash
    name    TEXT    NOT NULL DEFAULT '',  -- domain, or block label
    data    BLOB    NOT NULL,
    last_ms INTEGER NOT NULL,   -- its newest event
    PRIMARY KEY (kind, key, name)
);
CREATE INDEX snowshoe_last ON snowshoe (last_ms);

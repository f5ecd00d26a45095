-- 002_rcpt_index: `kanjiki query --rcpt` looks up refused recipients; and
-- grants are purged by expiry.
CREATE INDEX verdicts_rcpt   ON verdicts (rcpt COLLATE NOCASE);
CREATE INDEX grants_expires  ON grants (expires);

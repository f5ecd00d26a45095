-- 005_message_id: the Message-ID of a message verdict, so that `kanjiki
-- explain` and `kanjiki trace` find a verdict from a complaint that quotes
-- only the message.
ALTER TABLE verdicts ADD COLUMN message_id TEXT;   -- without <>, NULL when none
CREATE INDEX verdicts_msgid ON verdicts (message_id);

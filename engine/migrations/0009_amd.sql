-- Answering machines (issue 14): when the mailbox's beep ended, in ms of the callee's
-- audio after the answer, for attempts whose campaign detects machines and heard one
-- (NULL: no beep heard, or no detection). The `machine` result is in `result`.
ALTER TABLE attempts ADD COLUMN beep_ms INTEGER;

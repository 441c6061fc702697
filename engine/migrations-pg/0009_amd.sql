-- Answering machines (issue 14): when the mailbox's beep ended, in ms of the callee's
-- audio after the answer (NULL: no beep heard, or no detection).
ALTER TABLE attempts ADD COLUMN beep_ms BIGINT;

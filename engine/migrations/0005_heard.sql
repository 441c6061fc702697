-- Whether the message was heard (issue 14). Per attempt: heard | confirmed | partial |
-- machine beside the outcome word (answered calls only). Per targeted contact: the best
-- result so far, the per-zone message it hears (index into the campaign's `messages`,
-- NULL: the default prompt), and whether the campaign's `until` is met (it is done and
-- never called again in the campaign; before this, being answered was enough).
ALTER TABLE attempts ADD COLUMN result TEXT;
ALTER TABLE campaign_contacts ADD COLUMN result TEXT;
ALTER TABLE campaign_contacts ADD COLUMN message INTEGER;
ALTER TABLE campaign_contacts ADD COLUMN satisfied INTEGER NOT NULL DEFAULT 0;
UPDATE campaign_contacts SET satisfied = answered;

-- Webhooks (endpoints per tenant and their outbox) and the hash-chained audit trail.

-- A tenant's endpoint: `events` is the subscribed kinds as ",a,b," so that the outbox
-- writer selects subscribers with one LIKE; the secret is kept to sign every request.
CREATE TABLE webhooks (
  id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  url TEXT NOT NULL,
  events TEXT NOT NULL,
  secret TEXT NOT NULL,
  created_ms INTEGER NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant, id);

-- The outbox: one row per event per subscribed endpoint, kept after delivery (the
-- deliveries list and manual redelivery read it).
CREATE TABLE webhook_deliveries (
  id INTEGER PRIMARY KEY,
  webhook TEXT NOT NULL,
  tenant TEXT NOT NULL,
  event_id TEXT NOT NULL,           -- webhook-id: the same on every retry
  event TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,              -- pending | delivered | dead
  attempts INTEGER NOT NULL DEFAULT 0,
  next_ms INTEGER NOT NULL,
  since_ms INTEGER NOT NULL,        -- start of the 24 h retry window
  last_status INTEGER,
  last_error TEXT,
  created_ms INTEGER NOT NULL,
  done_ms INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_ms);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook, id);

-- The audit trail: one chain per tenant ('' for the platform's own acts).
CREATE TABLE audit_log (
  tenant TEXT NOT NULL,
  seq INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  subject TEXT NOT NULL,
  content TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (tenant, seq)
);

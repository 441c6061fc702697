-- Inbound numbers (DIDs): which tenant's menu answers a call to a number. Keyed by the
-- E.164 form; an inbound call is matched on it.
CREATE TABLE dids (
  number TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  flow TEXT NOT NULL,               -- citizen | staff
  created_ms INTEGER NOT NULL
);
CREATE INDEX dids_tenant ON dids (tenant, number);

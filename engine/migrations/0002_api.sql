-- The control API's own tables (tenants with token hashes, prompt metadata, street lists,
-- idempotency keys, the generated admin token's hash), created before by the API itself
-- with CREATE TABLE IF NOT EXISTS: kept as IF NOT EXISTS so that databases it created
-- migrate unchanged.
CREATE TABLE IF NOT EXISTS api_tenants (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, token_sha256 TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_prompts (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
  duration_ms INTEGER NOT NULL, codecs TEXT NOT NULL, loudness TEXT NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS api_prompts_tenant ON api_prompts (tenant, id);
CREATE TABLE IF NOT EXISTS api_streets (
  tenant TEXT NOT NULL, street TEXT NOT NULL COLLATE NOCASE, zone TEXT NOT NULL,
  PRIMARY KEY (tenant, street));
CREATE TABLE IF NOT EXISTS api_idempotency (
  scope TEXT NOT NULL, key TEXT NOT NULL, request_sha256 TEXT NOT NULL,
  status INTEGER NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL,
  created_ms INTEGER NOT NULL, PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS api_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- A campaign's recent attempt rate (GET /v1/campaigns/{id}) without scanning its journal.
CREATE INDEX IF NOT EXISTS attempts_started ON attempts (campaign_id, started_ms);

-- Limits per destination prefix (issue 16): CPS and channels towards numbers starting with
-- `prefix`, on top of the trunks' limits. `tenant` is '' for a global limit (the admin's),
-- else the tenant whose calls it limits. One limit per scope and prefix.
CREATE TABLE prefix_limits (
  tenant TEXT NOT NULL DEFAULT '',
  prefix TEXT NOT NULL,
  cps DOUBLE PRECISION NOT NULL,
  max_channels BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY (tenant, prefix)
);

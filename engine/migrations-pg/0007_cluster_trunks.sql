-- Trunk changes made through the API on any node of a cluster (issue 15): every node
-- follows this table, so a trunk created, replaced or removed on one node is the same on
-- all of them, and stays so across restarts (over the configuration file's trunks).
--
-- One row per trunk name, its latest change: the body the API accepted (the keys of a
-- `[[trunk]]` table, password included, as the configuration file holds it), or NULL when
-- the trunk was removed. `version` comes from one sequence, so a node that has applied
-- every change up to N asks only for rows above N.

CREATE SEQUENCE cluster_trunk_version;

CREATE TABLE cluster_trunks (
  name TEXT PRIMARY KEY,
  version BIGINT NOT NULL,
  config JSONB,                         -- NULL: removed
  fence BIGINT NOT NULL,                -- the run that made the change (it applied it already)
  changed_ms BIGINT NOT NULL            -- the database's clock
);

CREATE INDEX cluster_trunks_version ON cluster_trunks (version);

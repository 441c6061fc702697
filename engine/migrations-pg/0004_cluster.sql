-- Several dialer nodes on one database (issue 15): node rows with a heartbeat lease, the
-- fencing token of each node's run, claims on due contacts, and each node's share of the
-- trunks' limits.
--
-- A node's run is known by its fence, a number drawn from `cluster_fence` when it joins
-- (again at every start, and when it finds its lease lost). A claim or an attempt
-- carries the fence of the run that made it; it is honoured only while that run's node
-- row beats (beat_ms within lease_ms of the database's clock). A node back from the dead
-- has a fence nobody honours any more: its stale claims are refused.

CREATE SEQUENCE cluster_fence;

CREATE TABLE cluster_nodes (
  id TEXT PRIMARY KEY,                  -- [cluster] node_id
  fence BIGINT NOT NULL UNIQUE,         -- the current run's token
  sip_addr TEXT NOT NULL,
  media_ip TEXT NOT NULL,
  http_addr TEXT NOT NULL,
  started_ms BIGINT NOT NULL,
  beat_ms BIGINT NOT NULL,              -- the database's clock at the last beat
  lease_ms BIGINT NOT NULL,
  live_calls BIGINT NOT NULL DEFAULT 0,
  state TEXT NOT NULL                   -- up | left
);

-- Each live node's share of each trunk, rewritten at every beat under one advisory lock,
-- so that the shares of all nodes never add up to more than the trunk's limits.
CREATE TABLE cluster_trunk_shares (
  trunk TEXT NOT NULL,
  node TEXT NOT NULL,
  fence BIGINT NOT NULL,
  wants BOOLEAN NOT NULL,               -- the node has a backlog for it
  cps DOUBLE PRECISION NOT NULL,        -- its CPS share
  channels BIGINT NOT NULL,             -- its channel share
  reserved BIGINT NOT NULL,             -- max(channels, calls it still has)
  factor DOUBLE PRECISION NOT NULL,     -- its congestion factor (1 = no 503s)
  PRIMARY KEY (trunk, node)
);

-- The run holding a contact (claimed for dialling, or dialling); NULL: free.
ALTER TABLE campaign_contacts ADD COLUMN fence BIGINT;
-- The run that journaled an attempt: its dangling attempts are closed by the others once
-- its lease is over.
ALTER TABLE attempts ADD COLUMN fence BIGINT;

-- The database's clock in Unix ms: leases are judged on one clock, not on the nodes'.
CREATE FUNCTION dialer_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE AS
  $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

-- Whether the run with fence `f` still holds its lease.
CREATE FUNCTION dialer_fence_live(f BIGINT) RETURNS BOOLEAN LANGUAGE sql VOLATILE AS
  $$ SELECT EXISTS (SELECT 1 FROM cluster_nodes n
                    WHERE n.fence = f AND n.state = 'up'
                      AND n.beat_ms >= dialer_now_ms() - n.lease_ms) $$;

-- The fence of the run this transaction writes for (0: not clustered), set by the
-- store's writer at the start of each batch.
CREATE FUNCTION dialer_my_fence() RETURNS BIGINT LANGUAGE sql STABLE AS
  $$ SELECT COALESCE(NULLIF(current_setting('dialer.fence', true), ''), '0')::BIGINT $$;

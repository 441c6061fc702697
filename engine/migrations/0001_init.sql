-- Contacts: one per number per tenant.
CREATE TABLE contacts (
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL,
  number TEXT NOT NULL,
  number_type TEXT NOT NULL,
  street TEXT NOT NULL DEFAULT '',
  house_number TEXT NOT NULL DEFAULT '',
  zone TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL,
  opt_out INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  UNIQUE (tenant, number)
);
CREATE INDEX contacts_zone ON contacts (tenant, zone);
CREATE INDEX contacts_street ON contacts (tenant, street);

CREATE TABLE campaigns (
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  spec TEXT NOT NULL,
  priority TEXT NOT NULL,
  state TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  UNIQUE (tenant, name)
);

-- The targeted contacts of a campaign and where each stands.
CREATE TABLE campaign_contacts (
  campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
  contact_id INTEGER NOT NULL REFERENCES contacts (id),
  state TEXT NOT NULL,              -- pending | dialing | done
  attempts INTEGER NOT NULL DEFAULT 0, -- attempts counted against the retry allowance
  next_ms INTEGER NOT NULL DEFAULT 0,
  last_outcome TEXT,
  answered INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (campaign_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, next_ms);

-- The attempt journal: written (with the Call-ID) before the INVITE leaves.
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY,
  campaign_id INTEGER NOT NULL,
  contact_id INTEGER NOT NULL,
  number TEXT NOT NULL,
  call_id TEXT NOT NULL UNIQUE,
  trunk TEXT NOT NULL,
  state TEXT NOT NULL,              -- dialing | final
  outcome TEXT,                     -- outcome word, or 'unknown' after a crash
  sip_status INTEGER,
  sip_reason TEXT,
  counted INTEGER NOT NULL DEFAULT 1, -- 0: carrier fault sent to another trunk
  started_ms INTEGER NOT NULL,
  answered_ms INTEGER,
  ended_ms INTEGER,
  pdd_ms INTEGER,
  duration_ms INTEGER,
  played_permille INTEGER,
  dtmf TEXT
);
CREATE INDEX attempts_contact ON attempts (campaign_id, contact_id);
CREATE INDEX attempts_dialing ON attempts (state) WHERE state = 'dialing';

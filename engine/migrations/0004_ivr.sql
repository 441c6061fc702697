-- Registrations (by the phone menu or the web form): the consent record of a resident's
-- own number. At most one live row per number per tenant; unregistering sets deleted_ms
-- (the contact itself is erased).
CREATE TABLE registrations (
  id INTEGER PRIMARY KEY,
  tenant TEXT NOT NULL,
  number TEXT NOT NULL,
  source TEXT NOT NULL,
  zone TEXT NOT NULL DEFAULT '',    -- '' : the whole town
  consent_ms INTEGER NOT NULL,
  notice_version TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  deleted_ms INTEGER
);
CREATE INDEX registrations_tenant ON registrations (tenant, id);
CREATE UNIQUE INDEX registrations_live ON registrations (tenant, number) WHERE deleted_ms IS NULL;
-- The staff line's PIN per tenant, salted and stretched (engine::ivr::PinHash).
CREATE TABLE staff_pins (
  tenant TEXT PRIMARY KEY,
  pin_hash TEXT NOT NULL,
  updated_ms INTEGER NOT NULL
);
-- A tenant's replacements of the phone menus' prompts: a text template (spoken by
-- espeak-ng) or an uploaded recording (a prompt id), by prompt key.
CREATE TABLE ivr_prompts (
  tenant TEXT NOT NULL,
  key TEXT NOT NULL,
  text TEXT,
  prompt_id TEXT,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (tenant, key)
);

-- Issue 9: data-subject requests (find, export, erase).

-- One form for phone numbers (recording::phone::normalize: digits, without a
-- NANP country code). The stored numbers of recordings and of phone hold
-- selectors are rewritten by the Rust step that runs with this migration
-- (schema.rs), so the rule is written once.

-- `find --lead` (phone, agent, campaign and name have their indexes).
CREATE INDEX recordings_lead ON recordings(lead_id) WHERE lead_id IS NOT NULL;

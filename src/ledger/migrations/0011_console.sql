-- Issue 17: local accounts of the compliance console (`recvault console
-- user add`). The password is kept only as its argon2id hash (PHC string);
-- VICIdial users are checked in VICIdial's database and are never here.
CREATE TABLE console_accounts (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('listener', 'compliance', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- The console's searches by state (newest first, paged, counted) read this
-- index alone instead of sorting every recording in the state.
CREATE INDEX recordings_state_time ON recordings(state, erase_request, retain_from);
-- Searches by date range, and by campaign or agent newest first: the
-- retention indexes are partial (what retention may still delete), so a
-- search over every recording cannot use them.
CREATE INDEX recordings_time ON recordings(retain_from);
CREATE INDEX recordings_campaign_time ON recordings(campaign, retain_from);
CREATE INDEX recordings_agent_time ON recordings(agent, retain_from) WHERE agent IS NOT NULL;

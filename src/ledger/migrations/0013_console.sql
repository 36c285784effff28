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

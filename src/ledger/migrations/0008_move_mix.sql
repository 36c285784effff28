-- What `[vicidial] move_mix` did, counted for `recvault status`: legs mixed,
-- legs moved to ORIG unmixed (no partner, audio recvault cannot mix, the
-- mix's name taken), mixes whose recording_log row was not found. Counts and
-- times only: file names (which hold phone numbers) stay out of the ledger,
-- so an erasure has nothing to find here.
CREATE TABLE move_mix_tally (
    kind    TEXT PRIMARY KEY,
    count   INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);

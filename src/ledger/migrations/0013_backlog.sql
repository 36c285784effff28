-- Issue 18: the first day on a dialer with a million recordings waiting.

-- Under disk pressure the backlog goes largest first (what frees the most
-- space for one recording's fixed cost): a page of it read in that order
-- through this index, whatever the backlog's size. Only settled rows are
-- in it, so archived recordings cost it nothing.
CREATE INDEX recordings_settled_size ON recordings(size) WHERE state = 'settled';

-- Recordings verified (and their original bytes) per minute, for the drain
-- estimate of `recvault status`: written in the transaction that records
-- `verified`, read a day at most (older minutes are dropped as new ones come).
CREATE TABLE drain_minutes (
    minute     INTEGER PRIMARY KEY,
    recordings INTEGER NOT NULL,
    bytes      INTEGER NOT NULL
);

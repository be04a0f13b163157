-- What each guest offers, as its SDK runtime listed it when `hl-worker
-- guest add` ran the image once (the reserved call __hl_functions): shown by
-- `guest list` and the dashboard. NULL when the image was stored without
-- that check (a plain INSERT, or `guest add` on a host without /dev/kvm).
-- The worker does not rely on it: an unknown_function error asks the guest
-- itself. Bounded like the host's own parse of the list.
ALTER TABLE hl.guests ADD COLUMN functions text[];

ALTER TABLE hl.guests ADD CONSTRAINT guests_functions_bounded
    CHECK (functions IS NULL OR cardinality(functions) <= 1024);

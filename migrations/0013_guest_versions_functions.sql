-- The dashboard's guest page shows each guest's functions (hl.guests.functions,
-- migration 0011, listed by `guest add`): the view hl_dashboard reads gains
-- the column. NULL: a guest stored without a list (a raw row, or a host
-- without /dev/kvm at `guest add`).
CREATE OR REPLACE VIEW hl.guest_versions AS
    SELECT name, sha256, octet_length(image) AS size_bytes, created_at, updated_at, functions
    FROM hl.guests;

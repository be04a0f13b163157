#include <libpq-fe.h>

// libpq's diagnostic field codes are character-literal macros, which Swift
// cannot import; these re-export the ones PGError reads.
static const int hl_pg_diag_sqlstate = PG_DIAG_SQLSTATE;
static const int hl_pg_diag_message_primary = PG_DIAG_MESSAGE_PRIMARY;
static const int hl_pg_diag_message_detail = PG_DIAG_MESSAGE_DETAIL;
static const int hl_pg_diag_message_hint = PG_DIAG_MESSAGE_HINT;

/* hl.rs mirrors these values of hl_abi.h by hand (Rust cannot include a C
 * header without bindgen); build.sh compiles this file so that a change to
 * the header fails the Rust build instead of silently diverging. */
#include "hl_abi.h"

_Static_assert(HL_STATUS_OK == 0 && HL_STATUS_GUEST_ERROR == 1 && HL_STATUS_FINAL_ERROR == 6,
               "guests/sdk/rust/hl.rs: mod status");
_Static_assert(HL_LOG_DEBUG == 0 && HL_LOG_INFO == 1 && HL_LOG_WARNING == 2 && HL_LOG_ERROR == 3,
               "guests/sdk/rust/hl.rs: enum Level");

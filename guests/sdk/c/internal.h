/* Declarations shared by the runtime's own files only. */
#ifndef HL_INTERNAL_H
#define HL_INTERNAL_H

#include <stddef.h>

/* Reports HL_STATUS_OUT_OF_MEMORY to the host and ends the call. */
_Noreturn void hl_out_of_memory(size_t bytes);

#endif /* HL_INTERNAL_H */

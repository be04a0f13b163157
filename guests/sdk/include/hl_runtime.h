/*
 * hl_runtime.h — the services the guest runtime (guests/sdk/c) offers to
 * guest code in any language. Swift imports this header as the HLRuntime
 * module; C guests get it through hl_guest.h.
 */
#ifndef HL_RUNTIME_H
#define HL_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "hl_abi.h"

/* The current call, valid from the start of `main` until it returns. Both
 * point into the input area, which is mapped read-only. */
const uint8_t *hl_call_name(size_t *len);
const uint8_t *hl_call_input(size_t *len);

/* Writes the call's result to the output area; the last one set wins.
 * status is an enum hl_status. An HL_STATUS_OK result too large for the
 * output area becomes HL_STATUS_OUTPUT_TOO_LARGE; messages of other statuses
 * are cut to fit. */
void hl_set_result(uint32_t status, const void *bytes, size_t len);

/* Listing mode (the reserved call HL_CALL_FUNCTIONS): a dispatcher that
 * sees hl_call_is_listing() != 0 names each of its functions once, in
 * order, with hl_list_function, and runs none of them. */
int hl_call_is_listing(void);
void hl_list_function(const char *name, size_t len);

/* Sets HL_STATUS_UNKNOWN_FUNCTION naming the current call's function. */
void hl_report_unknown_function(void);

/* Host calls. A log message longer than the host-call area allows is cut
 * at a UTF-8 boundary. The wall clock is 0 if the host did not answer. */
void hl_log(uint32_t level, const void *message, size_t len);
uint64_t hl_wall_clock_ns(void);

/* Asks for a new job (HL_HOSTCALL_ENQUEUE), inserted only when this call's
 * job completes, in the same transaction. guest and function are
 * NUL-terminated; args is a JSON object (empty means {}); options a JSON
 * object or empty (see hl_abi.h). Returns the job's index among this call's
 * (for "after"), or -1 with a NUL-terminated reason in reason (when
 * reason_capacity > 0) if the host refused it. */
long hl_enqueue(const char *guest, const char *function, const void *args, size_t args_len,
                const void *options, size_t options_len, char *reason, size_t reason_capacity);

/* hl_enqueue with the guest's and the function's names given by length
 * rather than NUL-terminated: for bindings whose strings carry their length
 * (Rust, the Wasm imports). */
long hl_enqueue_bytes(const void *guest, size_t guest_len, const void *function, size_t function_len,
                      const void *args, size_t args_len, const void *options, size_t options_len, char *reason,
                      size_t reason_capacity);

/* Reports progress (HL_HOSTCALL_PROGRESS): parts per million done, and a
 * UTF-8 note. The host keeps the latest, written about once a second.
 * Returns 1 if the host accepted it. */
int hl_progress(uint32_t parts_per_million, const void *note, size_t len);

/* The heap's free bytes in total, and the largest single allocation that
 * would succeed now; a guest can stay short of out_of_memory with them. */
size_t hl_heap_free_bytes(void);
size_t hl_heap_largest_allocation(void);

/* Bytes between the stack's bottom and its top, as the host laid it out. */
size_t hl_stack_size(void);

/* Ends the call at once, from any depth, with this status and message
 * (flushing the stdout line first): for a language's panic or trap, whose
 * stack cannot be unwound back to the dispatcher. */
_Noreturn void hl_end_call(uint32_t status, const void *message, size_t len);

/* Executes an invalid instruction: the host sees a guest crash. */
_Noreturn void hl_crash(void);

#endif /* HL_RUNTIME_H */

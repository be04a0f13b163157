/*
 * hl_guest.h — the C guest API.
 *
 * A C guest defines functions of type hl_guest_fn and lists them once:
 *
 *     static void add(const uint8_t *input, size_t len) { ... hl_return(...); }
 *     HL_FUNCTIONS({"add", add}, {"echo", echo})
 *
 * Each function sets its result with hl_return, hl_return_error or
 * hl_return_final_error (or hl_set_result for another status) before
 * returning. The input is the
 * call's argument bytes; it lives in the read-only input area and stays
 * valid until the function returns.
 */
#ifndef HL_GUEST_H
#define HL_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "hl_runtime.h"

typedef void (*hl_guest_fn)(const uint8_t *input, size_t len);

struct hl_function {
    const char *name;
    hl_guest_fn fn;
};

/* Calls the entry of table whose name equals the call's function name, or
 * reports HL_STATUS_UNKNOWN_FUNCTION. */
void hl_dispatch(const struct hl_function *table, size_t count);

/* The runtime calls the guest's main once per call; this defines it. */
#define HL_FUNCTIONS(...)                                                              \
    static const struct hl_function hl_function_table[] = {__VA_ARGS__};               \
    int main(int argc, char **argv)                                                    \
    {                                                                                  \
        (void)argc;                                                                    \
        (void)argv;                                                                    \
        hl_dispatch(hl_function_table, sizeof hl_function_table / sizeof hl_function_table[0]); \
        return 0;                                                                      \
    }

static inline void hl_return(const void *bytes, size_t len)
{
    hl_set_result(HL_STATUS_OK, bytes, len);
}

/* A guest-reported failure (HL_STATUS_GUEST_ERROR) with a NUL-terminated
 * UTF-8 message. */
void hl_return_error(const char *message);

/* A failure a retry cannot fix (HL_STATUS_FINAL_ERROR): the job is
 * discarded at once instead of being retried. */
void hl_return_final_error(const char *message);

/* Declares fn (void fn(void)) as the guest's init: it runs once when a VM
 * is built, before any job's call and before a recycled VM's snapshot, so
 * what it sets up is there for every call. It reports failure with
 * hl_return_error or hl_return_final_error; then no job runs on that VM. */
#define HL_INIT(fn)                                                                    \
    void hl_init(void);                                                                \
    void hl_init(void) { fn(); }

/* Heap. Exhaustion never returns NULL: the runtime reports
 * HL_STATUS_OUT_OF_MEMORY to the host and the call ends there. */
void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void *realloc(void *pointer, size_t size);
void free(void *pointer);
int posix_memalign(void **result, size_t alignment, size_t size);

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* Minimal JSON for C guests: read top-level members of an object. Keys are
 * matched byte for byte (escaped keys never match). Each returns 1 on
 * success, 0 if the member is missing or of another type. */

/* An integer member that fits int64_t exactly. */
int hl_json_get_i64(const uint8_t *json, size_t len, const char *key, int64_t *value);

/* A string member, unescaped into malloc'd memory (caller frees) of *out_len
 * bytes plus a terminating NUL. */
int hl_json_get_string(const uint8_t *json, size_t len, const char *key, char **out, size_t *out_len);

/* Writes value in decimal to digits (no NUL); returns the length. */
#define HL_I64_MAX_DIGITS 20
size_t hl_format_i64(int64_t value, char digits[HL_I64_MAX_DIGITS]);

#endif /* HL_GUEST_H */

/*
 * The guest SDK inside a Wasm module, compiled to wasm32 against wasi-libc:
 * the API of hl_runtime.h and hl_guest.h over the module's `hl` imports, so
 * the same C or Embedded Swift source builds natively or through Wasm.
 *
 * The module exports hl_alloc (where the runtime writes a call's function
 * name and input) and hl_main (which runs the guest's `main`, the function
 * table of HL_FUNCTIONS or Swift's Guest, once per call). See
 * guests/README.md, "The Wasm ABI".
 */
#include <stdio.h>
#include <stdlib.h>

#include "hl_guest.h"

#define HL_IMPORT(name) __attribute__((import_module("hl"), import_name(name)))

HL_IMPORT("set_result") void hl_import_set_result(uint32_t status, const void *bytes, size_t len);
HL_IMPORT("return_error") void hl_import_return_error(const void *message, size_t len);
HL_IMPORT("return_final_error") void hl_import_return_final_error(const void *message, size_t len);
HL_IMPORT("unknown_function") void hl_import_unknown_function(void);
HL_IMPORT("call_is_listing") int hl_import_call_is_listing(void);
HL_IMPORT("list_function") void hl_import_list_function(const char *name, size_t len);
HL_IMPORT("log") void hl_import_log(uint32_t level, const void *message, size_t len);
HL_IMPORT("wall_clock_ns") uint64_t hl_import_wall_clock_ns(void);
HL_IMPORT("memory_room") uint64_t hl_import_memory_room(void);
HL_IMPORT("enqueue") int32_t hl_import_enqueue(const void *guest, size_t guest_len, const void *function,
                                               size_t function_len, const void *args, size_t args_len,
                                               const void *options, size_t options_len, char *reason,
                                               size_t reason_capacity);
HL_IMPORT("progress") int32_t hl_import_progress(uint32_t parts_per_million, const void *note, size_t len);

/* The stack wasm-ld lays out (placed first, so an overflow leaves linear
 * memory and traps instead of overwriting data). */
extern char __stack_low;
extern char __stack_high;

int main(int argc, char **argv);

/* The guest's own init (HL_INIT in C, @_cdecl("hl_init") in Swift), if any. */
extern void hl_init(void) __attribute__((weak));

static struct {
    const uint8_t *name;
    size_t name_len;
    const uint8_t *input;
    size_t input_len;
} call;

/* One buffer for every call's name and input, grown as needed and never
 * freed, so calls in one instance do not creep through the heap. */
static struct {
    uint8_t *bytes;
    size_t capacity;
} call_buffer;

__attribute__((export_name("hl_alloc"))) void *hl_alloc(size_t len)
{
    if (len > call_buffer.capacity) {
        uint8_t *bigger = realloc(call_buffer.bytes, len);
        if (bigger == NULL)
            return NULL;
        call_buffer.bytes = bigger;
        call_buffer.capacity = len;
    }
    return call_buffer.bytes;
}

/* The module's init export, which the runtime runs once per instance. */
__attribute__((export_name("init"))) void hl_wasm_init(void)
{
    /* A call buffer made before the snapshot is not allocated again by
     * every call with input of up to this size. */
    hl_alloc(4096);
    if (hl_init)
        hl_init();
    fflush(stdout);
    fflush(stderr);
}

__attribute__((export_name("hl_main"))) void hl_main(const uint8_t *name, size_t name_len, const uint8_t *input,
                                                     size_t input_len)
{
    call.name = name;
    call.name_len = name_len;
    call.input = input;
    call.input_len = input_len;
    main(0, NULL);
    /* printf's and Swift print's last lines, buffered in the module. */
    fflush(stdout);
    fflush(stderr);
}

const uint8_t *hl_call_name(size_t *len)
{
    *len = call.name_len;
    return call.name;
}

const uint8_t *hl_call_input(size_t *len)
{
    *len = call.input_len;
    return call.input;
}

void hl_set_result(uint32_t status, const void *bytes, size_t len)
{
    hl_import_set_result(status, bytes, len);
}

void hl_return_error(const char *message)
{
    hl_import_return_error(message, strlen(message));
}

void hl_return_final_error(const char *message)
{
    hl_import_return_final_error(message, strlen(message));
}

int hl_call_is_listing(void)
{
    return hl_import_call_is_listing();
}

void hl_list_function(const char *name, size_t len)
{
    hl_import_list_function(name, len);
}

void hl_report_unknown_function(void)
{
    hl_import_unknown_function();
}

void hl_dispatch(const struct hl_function *table, size_t count)
{
    if (hl_call_is_listing()) {
        for (size_t i = 0; i < count; i++)
            hl_list_function(table[i].name, strlen(table[i].name));
        return;
    }
    for (size_t i = 0; i < count; i++) {
        const char *name = table[i].name;
        if (strlen(name) == call.name_len && memcmp(name, call.name, call.name_len) == 0) {
            table[i].fn(call.input, call.input_len);
            return;
        }
    }
    hl_report_unknown_function();
}

void hl_log(uint32_t level, const void *message, size_t len)
{
    hl_import_log(level, message, len);
}

uint64_t hl_wall_clock_ns(void)
{
    return hl_import_wall_clock_ns();
}

/* The host writes the reason into the module's buffer; -1 on refusal. */
long hl_enqueue_bytes(const void *guest, size_t guest_len, const void *function, size_t function_len,
                      const void *args, size_t args_len, const void *options, size_t options_len, char *reason,
                      size_t reason_capacity)
{
    int32_t index = hl_import_enqueue(guest, guest_len, function, function_len, args, args_len, options, options_len,
                                      reason, reason_capacity);
    return index < 0 ? -1 : (long)index;
}

long hl_enqueue(const char *guest, const char *function, const void *args, size_t args_len,
                const void *options, size_t options_len, char *reason, size_t reason_capacity)
{
    return hl_enqueue_bytes(guest, strlen(guest), function, strlen(function), args, args_len, options, options_len,
                            reason, reason_capacity);
}

int hl_progress(uint32_t parts_per_million, const void *note, size_t len)
{
    return hl_import_progress(parts_per_million, note, len) != 0;
}

/* Inside a module the heap is wasi-libc's malloc over linear memory; what
 * the guest can still get is what linear memory may grow by. */
size_t hl_heap_free_bytes(void)
{
    uint64_t room = hl_import_memory_room();
    return room > SIZE_MAX ? SIZE_MAX : (size_t)room;
}

size_t hl_heap_largest_allocation(void)
{
    return hl_heap_free_bytes();
}

size_t hl_stack_size(void)
{
    return (size_t)(&__stack_high - &__stack_low);
}

/* A panic's end inside a module: the runtime's trap unwinding does the rest. */
_Noreturn void hl_end_call(uint32_t status, const void *message, size_t len)
{
    hl_set_result(status, message, len);
    __builtin_trap();
}

/* `unreachable`: the call ends with the trap of that name. */
_Noreturn void hl_crash(void)
{
    __builtin_trap();
}

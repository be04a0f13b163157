/*
 * hl_wasm.h — what the Wasm runtime (guests/sdk/wasm) shares with the code
 * build.sh generates for one module: wasm2c's output and the glue that lists
 * the module's exports. Force-included (-include) into both, so wasm2c's
 * function prologue can name the stack check.
 */
#ifndef HL_WASM_H
#define HL_WASM_H

#include <stddef.h>
#include <stdint.h>

#include "wasm-rt.h"

/* Lowest stack address a generated function may start at. Every Wasm
 * function begins with this comparison of the stack pointer, instead of
 * wasm2c's call-depth counter (an increment and a decrement of a global per
 * call): deep recursion then traps as "call stack exhausted" with room to
 * spare for the runtime, rather than running into the guard page. */
extern uintptr_t hl_wasm_stack_limit;
_Noreturn void hl_wasm_stack_exhausted(void);

#define HL_WASM_STACK_CHECK()                                                   \
    do {                                                                        \
        if (__builtin_expect((uintptr_t)__builtin_frame_address(0) < hl_wasm_stack_limit, 0)) \
            hl_wasm_stack_exhausted();                                          \
    } while (0)

/* A guest function the module exports: (input pointer, input length). */
typedef void (*hl_wasm_function)(void *instance, uint32_t input, uint32_t len);

struct hl_wasm_export {
    const char *name;
    hl_wasm_function function;
};

/* The module, as the generated glue describes it. Optional exports are
 * NULL when the module lacks them. */
struct hl_wasm_module {
    size_t instance_size;
    void (*init_module)(void);
    void (*instantiate)(void *instance);
    void (*free)(void *instance);
    wasm_rt_memory_t *(*memory)(void *instance);
    /* wasi-libc's reactor start-up (constructors); run once per instance. */
    void (*initialize)(void *instance);
    /* hl_alloc(len) -> pointer: where the runtime may write len bytes. */
    uint32_t (*alloc)(void *instance, uint32_t len);
    /* init(): the module's own set-up, run once after instantiation. */
    void (*init)(void *instance);
    /* hl_main(name, name_len, input, input_len): the SDKs' one dispatcher. */
    void (*main)(void *instance, uint32_t name, uint32_t name_len, uint32_t input, uint32_t input_len);
    const struct hl_wasm_export *exports;
    size_t export_count;
};

extern const struct hl_wasm_module hl_wasm_module;

/* Linear memory of the current instance, for the imports. */
extern wasm_rt_memory_t *hl_wasm_current_memory;

/* A host import was handed a range outside linear memory: ends the call
 * with the trap "bad pointer handed to the host". */
_Noreturn void hl_wasm_bad_pointer(const char *import, uint64_t address, uint64_t len);

/* proc_exit: ends the call; status 0 keeps the result set so far. */
_Noreturn void hl_wasm_exit(uint32_t status);

/* A checked pointer to [address, address + len) in linear memory. */
static inline uint8_t *hl_wasm_bytes(const char *import, uint64_t address, uint64_t len)
{
    wasm_rt_memory_t *memory = hl_wasm_current_memory;
    if (address + len > memory->size)
        hl_wasm_bad_pointer(import, address, len);
    return memory->data + address;
}

#endif /* HL_WASM_H */

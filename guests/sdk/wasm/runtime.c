/*
 * The runtime for a Wasm module compiled ahead of time by wasm2c: it turns
 * the module into an ordinary guest of the C SDK (this file defines the
 * guest's `main`).
 *
 * - Linear memory is one block of the guest heap, reserved when the module
 *   is instantiated and as large as the heap allows (up to the module's own
 *   maximum), so growing it never moves it; growing past it is a trap.
 * - Every access is bounds-checked by the generated code
 *   (WASM_RT_MEMCHECK_SIGNAL_HANDLER=0: a guest has no signals).
 * - Traps unwind with setjmp/longjmp to the call's start and end the call as
 *   a guest error naming the trap ("wasm trap: ..."). A trapped instance is
 *   never run again: the next call instantiates the module afresh.
 * - The stack is checked by comparing the stack pointer at every function's
 *   start (hl_wasm.h), not by counting call depth.
 */
#include "hl_guest.h"
#include "hl_wasm.h"

#define BOOT ((const struct hl_boot_info *)(uintptr_t)HL_BOOT_INFO_ADDR)
#define WASM_PAGE ((uint64_t)65536)

/* Stack kept below the limit for the runtime, the host imports and the
 * largest generated function's frame between two checks. */
#define STACK_RESERVE ((uintptr_t)32 << 10)

/* Heap left to the runtime after linear memory is reserved: the instance,
 * its tables and their growth. */
#define HEAP_SLACK ((size_t)256 << 10)

/* Trap reasons beyond wasm2c's own. */
enum {
    TRAP_BAD_POINTER = 64,
    TRAP_MEMORY_GROW,
    TRAP_EXIT,
    TRAP_LIMIT,
};

/* setjmp/longjmp without a C library: the callee-saved registers, the stack
 * pointer and the return address. Only traps use them, always to unwind
 * from inside a Wasm call to the runtime frame that made it. */
__asm__(".section .text.hl_wasm_setjmp,\"ax\",@progbits\n"
        ".globl setjmp\n"
        ".type setjmp,@function\n"
        "setjmp:\n"
        "    movq %rbx, 0(%rdi)\n"
        "    movq %rbp, 8(%rdi)\n"
        "    movq %r12, 16(%rdi)\n"
        "    movq %r13, 24(%rdi)\n"
        "    movq %r14, 32(%rdi)\n"
        "    movq %r15, 40(%rdi)\n"
        "    leaq 8(%rsp), %rdx\n"
        "    movq %rdx, 48(%rdi)\n"
        "    movq (%rsp), %rdx\n"
        "    movq %rdx, 56(%rdi)\n"
        "    xorl %eax, %eax\n"
        "    ret\n"
        ".size setjmp, . - setjmp\n"
        ".globl longjmp\n"
        ".type longjmp,@function\n"
        "longjmp:\n"
        "    movl %esi, %eax\n"
        "    testl %eax, %eax\n"
        "    jnz 1f\n"
        "    incl %eax\n"
        "1:\n"
        "    movq 0(%rdi), %rbx\n"
        "    movq 8(%rdi), %rbp\n"
        "    movq 16(%rdi), %r12\n"
        "    movq 24(%rdi), %r13\n"
        "    movq 32(%rdi), %r14\n"
        "    movq 40(%rdi), %r15\n"
        "    movq 48(%rdi), %rsp\n"
        "    jmpq *56(%rdi)\n"
        ".size longjmp, . - longjmp\n"
        ".text\n");

uintptr_t hl_wasm_stack_limit;

static wasm_rt_memory_t no_memory;
wasm_rt_memory_t *hl_wasm_current_memory = &no_memory;

static struct {
    int runtime_ready;
    int module_ready;
    /* An instance that can run a call: instantiated, and not trapped since. */
    int instance_ready;
    void *instance;
    /* Inside a call or an instantiation, where a trap can unwind to. */
    int guarding;
    jmp_buf trap;
    /* What the trap message adds after the trap's name. */
    char detail[160];
    size_t detail_len;
    uint32_t exit_status;
} state;

/* The block linear memory lives in. It is the runtime's first allocation
 * in a heap nothing has written yet, so it starts out zero, as Wasm memory
 * must; only bytes below dirty_end, which an instance has used, need zeroing
 * again. That spares a call that grows memory from clearing what is clear
 * already. */
static struct {
    uint8_t *base;
    uint64_t capacity;
    uint64_t dirty_end;
    int in_use;
} reservation;

/* Makes [from, to) of the reservation zero and marks it used. */
static void clear(uint64_t from, uint64_t to)
{
    uint64_t dirty = to < reservation.dirty_end ? to : reservation.dirty_end;
    if (dirty > from)
        memset(reservation.base + from, 0, (size_t)(dirty - from));
    if (to > reservation.dirty_end)
        reservation.dirty_end = to;
}

/* The detail line of a trap: text and numbers, ASCII only. */
static void detail_text(const char *text)
{
    while (*text && state.detail_len < sizeof state.detail)
        state.detail[state.detail_len++] = *text++;
}

static void detail_u64(uint64_t value)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0 && state.detail_len < sizeof state.detail)
        state.detail[state.detail_len++] = digits[--n];
}

_Noreturn void wasm_rt_trap(wasm_rt_trap_t trap)
{
    /* Outside a guarded call nothing can unwind: a crash is the honest end. */
    if (!state.guarding)
        hl_crash();
    longjmp(state.trap, (int)trap + 1);
}

_Noreturn void hl_wasm_stack_exhausted(void)
{
    wasm_rt_trap(WASM_RT_TRAP_EXHAUSTION);
}

_Noreturn void hl_wasm_bad_pointer(const char *import, uint64_t address, uint64_t len)
{
    state.detail_len = 0;
    detail_text(" (");
    detail_text(import);
    detail_text(": ");
    detail_u64(len);
    detail_text(" bytes at ");
    detail_u64(address);
    detail_text(", linear memory has ");
    detail_u64(hl_wasm_current_memory->size);
    detail_text(")");
    wasm_rt_trap((wasm_rt_trap_t)TRAP_BAD_POINTER);
}

_Noreturn void hl_wasm_exit(uint32_t status)
{
    state.exit_status = status;
    wasm_rt_trap((wasm_rt_trap_t)TRAP_EXIT);
}

static _Noreturn void trap_limit(const char *what)
{
    state.detail_len = 0;
    detail_text(" (");
    detail_text(what);
    detail_text(")");
    wasm_rt_trap((wasm_rt_trap_t)TRAP_LIMIT);
}

static const char *trap_name(int trap)
{
    switch (trap) {
    case WASM_RT_TRAP_OOB: return "out of bounds memory access";
    case WASM_RT_TRAP_INT_OVERFLOW: return "integer overflow";
    case WASM_RT_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case WASM_RT_TRAP_INVALID_CONVERSION: return "invalid conversion to integer";
    case WASM_RT_TRAP_UNREACHABLE: return "unreachable executed";
    case WASM_RT_TRAP_CALL_INDIRECT: return "indirect call to a missing function or of the wrong type";
    case WASM_RT_TRAP_UNCAUGHT_EXCEPTION: return "uncaught exception";
    case WASM_RT_TRAP_EXHAUSTION: return "call stack exhausted";
    case TRAP_BAD_POINTER: return "bad pointer handed to the host";
    case TRAP_MEMORY_GROW: return "memory.grow past the guest's memory";
    case TRAP_LIMIT: return "module exceeds the runtime's limits";
    default: return "unknown trap";
    }
}

/* Ends the call after a trap: the instance is not run again. */
static void report_trap(int trap)
{
    state.instance_ready = 0;
    if (trap == TRAP_EXIT) {
        /* proc_exit(0) keeps the call's result; any other status fails it. */
        if (state.exit_status == 0)
            return;
        state.detail_len = 0;
        detail_text("wasm module exited with status ");
        detail_u64(state.exit_status);
        hl_set_result(HL_STATUS_GUEST_ERROR, state.detail, state.detail_len);
        return;
    }
    char message[256];
    size_t len = 0;
    const char *parts[] = {"wasm trap: ", trap_name(trap)};
    for (size_t p = 0; p < 2; p++) {
        for (const char *c = parts[p]; *c && len < sizeof message; c++)
            message[len++] = *c;
    }
    for (size_t i = 0; i < state.detail_len && len < sizeof message; i++)
        message[len++] = state.detail[i];
    hl_set_result(HL_STATUS_GUEST_ERROR, message, len);
}

/* --- wasm-rt.h: the runtime the generated code calls --- */

void wasm_rt_init(void)
{
    state.runtime_ready = 1;
}

bool wasm_rt_is_initialized(void)
{
    return state.runtime_ready;
}

void wasm_rt_free(void)
{
}

/* Function types, for call_indirect's type check: equal signatures get
 * equal indices. Entries: params, results, then the types, one byte each. */
static struct {
    uint8_t bytes[32 << 10];
    uint32_t offsets[2048];
    uint32_t count;
    uint32_t used;
} func_types;

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...)
{
    uint8_t signature[2 + 255];
    if (params + results > 255)
        trap_limit("a function type with more than 255 parameters and results");
    signature[0] = (uint8_t)params;
    signature[1] = (uint8_t)results;
    __builtin_va_list types;
    __builtin_va_start(types, results);
    for (uint32_t i = 0; i < params + results; i++)
        signature[2 + i] = (uint8_t)__builtin_va_arg(types, int);
    __builtin_va_end(types);
    size_t len = 2 + params + results;
    for (uint32_t t = 0; t < func_types.count; t++) {
        const uint8_t *known = func_types.bytes + func_types.offsets[t];
        if (known[0] == signature[0] && known[1] == signature[1] && memcmp(known, signature, len) == 0)
            return t;
    }
    if (func_types.count == sizeof func_types.offsets / sizeof func_types.offsets[0] ||
        len > sizeof func_types.bytes - func_types.used)
        trap_limit("more function types than the runtime holds");
    func_types.offsets[func_types.count] = func_types.used;
    memcpy(func_types.bytes + func_types.used, signature, len);
    func_types.used += (uint32_t)len;
    return func_types.count++;
}

static _Noreturn void trap_memory(uint64_t pages)
{
    state.detail_len = 0;
    detail_text(" (");
    detail_u64(pages);
    detail_text(" pages of 64 KiB wanted, the guest's heap holds ");
    detail_u64(reservation.capacity / WASM_PAGE);
    detail_text("; raise the job's memory_mb)");
    wasm_rt_trap((wasm_rt_trap_t)TRAP_MEMORY_GROW);
}

void wasm_rt_allocate_memory(wasm_rt_memory_t *memory, uint32_t initial_pages, uint32_t max_pages)
{
    if (reservation.in_use)
        trap_limit("more than one linear memory");
    if ((uint64_t)initial_pages * WASM_PAGE > reservation.capacity)
        trap_memory(initial_pages);
    if (reservation.capacity > (uint64_t)max_pages * WASM_PAGE)
        reservation.capacity = (uint64_t)max_pages * WASM_PAGE;
    reservation.in_use = 1;
    memory->data = reservation.base;
    memory->pages = initial_pages;
    memory->max_pages = max_pages;
    memory->size = (uint32_t)(initial_pages * WASM_PAGE);
    clear(0, memory->size);
}

/* Past the module's own maximum, memory.grow fails as Wasm says (-1);
 * past the guest's memory it traps, as running out of heap ends a native
 * guest's call. */
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *memory, uint32_t delta)
{
    uint32_t old_pages = memory->pages;
    uint64_t new_pages = (uint64_t)old_pages + delta;
    if (new_pages > memory->max_pages)
        return UINT32_MAX;
    if (new_pages * WASM_PAGE > reservation.capacity)
        trap_memory(new_pages);
    clear(memory->size, new_pages * WASM_PAGE);
    memory->pages = (uint32_t)new_pages;
    memory->size = (uint32_t)(new_pages * WASM_PAGE);
    return old_pages;
}

void wasm_rt_free_memory(wasm_rt_memory_t *memory)
{
    (void)memory;
    reservation.in_use = 0;
}

uint64_t hl_wasm_memory_room(void)
{
    return reservation.capacity - hl_wasm_current_memory->size;
}

/* wasm2c wants the same three table operations for each reference type;
 * one definition serves both. */
#define HL_WASM_TABLE_OPERATIONS(kind)                                                           \
    void wasm_rt_allocate_##kind##_table(wasm_rt_##kind##_table_t *table, uint32_t elements,     \
                                         uint32_t max_elements)                                  \
    {                                                                                            \
        table->data = calloc(elements ? elements : 1, sizeof *table->data);                      \
        table->size = elements;                                                                  \
        table->max_size = max_elements;                                                          \
    }                                                                                            \
                                                                                                 \
    void wasm_rt_free_##kind##_table(wasm_rt_##kind##_table_t *table)                            \
    {                                                                                            \
        free(table->data);                                                                       \
        table->data = NULL;                                                                      \
    }                                                                                            \
                                                                                                 \
    uint32_t wasm_rt_grow_##kind##_table(wasm_rt_##kind##_table_t *table, uint32_t delta,        \
                                         wasm_rt_##kind##_t init)                                \
    {                                                                                            \
        uint32_t old = table->size;                                                              \
        uint64_t grown = (uint64_t)old + delta;                                                  \
        if (grown > table->max_size || grown > (64u << 20) / sizeof *table->data)                \
            return UINT32_MAX;                                                                   \
        table->data = realloc(table->data, (size_t)(grown ? grown : 1) * sizeof *table->data);   \
        for (uint32_t i = old; i < grown; i++)                                                   \
            table->data[i] = init;                                                               \
        table->size = (uint32_t)grown;                                                           \
        return old;                                                                              \
    }

HL_WASM_TABLE_OPERATIONS(funcref)
HL_WASM_TABLE_OPERATIONS(externref)

/* --- instances and calls --- */

void hl_wasm_stdio_flush(void);

/* A fresh instance: module state, memory and tables as the module defines
 * them, then wasi-libc's constructors and the module's init export. Runs
 * guarded: data that does not fit memory traps, and so can init. */
/* All the heap but some slack, taken before anything else is allocated. */
static void reserve(void)
{
    size_t available = hl_heap_largest_allocation();
    uint64_t capacity = available > HEAP_SLACK ? (available - HEAP_SLACK) & ~(WASM_PAGE - 1) : 0;
    /* wasm_rt_memory_t counts bytes in 32 bits. */
    if (capacity > (uint64_t)UINT32_MAX + 1 - WASM_PAGE)
        capacity = (uint64_t)UINT32_MAX + 1 - WASM_PAGE;
    reservation.capacity = capacity;
    reservation.base = capacity ? malloc(capacity) : (uint8_t *)&reservation;
}

static void instantiate(void)
{
    const struct hl_wasm_module *module = &hl_wasm_module;
    if (!reservation.base)
        reserve();
    if (!state.module_ready) {
        wasm_rt_init();
        module->init_module();
        state.module_ready = 1;
    }
    if (state.instance) {
        hl_wasm_current_memory = &no_memory;
        module->free(state.instance);
    } else {
        state.instance = malloc(module->instance_size);
    }
    memset(state.instance, 0, module->instance_size);
    module->instantiate(state.instance);
    hl_wasm_current_memory = module->memory(state.instance);
    if (module->initialize)
        module->initialize(state.instance);
    if (module->init)
        module->init(state.instance);
    state.instance_ready = 1;
}

/* Writes the two pieces into linear memory where the module's hl_alloc
 * says; returns that address. */
static uint32_t place(const uint8_t *first, size_t first_len, const uint8_t *second, size_t second_len)
{
    size_t total = first_len + second_len;
    if (total == 0)
        return 0;
    if (!hl_wasm_module.alloc) {
        hl_return_error("the wasm module exports no hl_alloc, so it cannot be handed the call's input");
        return UINT32_MAX;
    }
    uint32_t at = hl_wasm_module.alloc(state.instance, (uint32_t)total);
    if (at == 0) {
        hl_set_result(HL_STATUS_OUT_OF_MEMORY, "the wasm module's hl_alloc returned 0", 37);
        return UINT32_MAX;
    }
    uint8_t *bytes = hl_wasm_bytes("hl_alloc", at, total);
    memcpy(bytes, first, first_len);
    memcpy(bytes + first_len, second, second_len);
    return at;
}

static void run(const uint8_t *name, size_t name_len, const uint8_t *input, size_t input_len)
{
    const struct hl_wasm_module *module = &hl_wasm_module;
    if (module->main) {
        uint32_t at = place(name, name_len, input, input_len);
        if (at != UINT32_MAX)
            module->main(state.instance, at, (uint32_t)name_len, at + (uint32_t)name_len, (uint32_t)input_len);
        return;
    }
    for (size_t i = 0; i < module->export_count; i++) {
        const char *export = module->exports[i].name;
        if (strlen(export) == name_len && memcmp(export, name, name_len) == 0) {
            uint32_t at = place(NULL, 0, input, input_len);
            if (at != UINT32_MAX)
                module->exports[i].function(state.instance, at, (uint32_t)input_len);
            return;
        }
    }
    hl_report_unknown_function();
}

static void list_exports(void)
{
    const struct hl_wasm_module *module = &hl_wasm_module;
    for (size_t i = 0; i < module->export_count; i++)
        hl_list_function(module->exports[i].name, strlen(module->exports[i].name));
}

static void set_stack_limit(void)
{
    size_t stack = hl_stack_size();
    hl_wasm_stack_limit = BOOT->stack_bottom + (stack / 2 < STACK_RESERVE ? stack / 2 : STACK_RESERVE);
}

/* The guest's init (the SDK's runtime calls it once per VM, before a
 * recycled VM's snapshot): instantiates the module, so no call pays for
 * that. A trap fails the init. */
void hl_init(void)
{
    set_stack_limit();
    int trap = setjmp(state.trap);
    if (trap != 0) {
        state.guarding = 0;
        hl_wasm_stdio_flush();
        report_trap(trap - 1);
        return;
    }
    state.guarding = 1;
    instantiate();
    state.guarding = 0;
    hl_wasm_stdio_flush();
}

/* The per-call entry the C SDK's runtime calls: a call, or the listing of
 * the module's functions. An instance that trapped is replaced first. */
int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    size_t name_len, input_len;
    const uint8_t *name = hl_call_name(&name_len);
    const uint8_t *input = hl_call_input(&input_len);
    if (hl_call_is_listing() && !hl_wasm_module.main) {
        list_exports();
        return 0;
    }
    set_stack_limit();

    int trap = setjmp(state.trap);
    if (trap != 0) {
        state.guarding = 0;
        hl_wasm_stdio_flush();
        report_trap(trap - 1);
        return 0;
    }
    state.guarding = 1;
    if (!state.instance_ready)
        instantiate();
    run(name, name_len, input, input_len);
    state.guarding = 0;
    hl_wasm_stdio_flush();
    return 0;
}

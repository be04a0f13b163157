/*
 * A C guest built through Wasm (traps_wasm) whose functions each end in one
 * Wasm trap, for the tests that every trap ends the call as a guest error
 * naming it, and that the instance is not used again after a trap. volatile
 * keeps the compiler from seeing (and removing) the faults.
 */
#include "hl_guest.h"

__attribute__((import_module("hl"), import_name("log"))) void hl_import_log(uint32_t level, uint32_t message,
                                                                              uint32_t len);
__attribute__((import_module("hl"), import_name("enqueue"))) int32_t
hl_import_enqueue(uint32_t guest, uint32_t guest_len, uint32_t function, uint32_t function_len, uint32_t args,
                  uint32_t args_len, uint32_t options, uint32_t options_len, uint32_t reason, uint32_t reason_capacity);

static volatile int32_t zero = 0;
static volatile int32_t minus_one = -1;

/* out_of_bounds: a load past the end of linear memory. */
static void out_of_bounds(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    volatile uint8_t *far = (volatile uint8_t *)(uintptr_t)0xFFFFFFF0u;
    uint8_t byte = *far;
    hl_return(&byte, 1);
}

/* divide_by_zero: an integer division by zero. */
static void divide_by_zero(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    int32_t quotient = 7 / zero;
    hl_return(&quotient, 0);
}

/* overflow: INT32_MIN / -1. */
static void overflow(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    volatile int32_t minimum = INT32_MIN;
    int32_t quotient = minimum / minus_one;
    hl_return(&quotient, 0);
}

/* unreachable: the unreachable instruction (hl_crash inside a module). */
static void unreachable(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    hl_crash();
}

static volatile int keep_going = 1;

static uint32_t descend(uint32_t depth)
{
    volatile uint8_t frame[64];
    frame[0] = (uint8_t)depth;
    if (!keep_going)
        return frame[0];
    return descend(depth + 1) + frame[0];
}

/* recurse: unbounded recursion, until the stack runs out. */
static void recurse(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    uint32_t depth = descend(0);
    hl_return(&depth, 0);
}

/* bad_pointer: hands the host a message that lies outside linear memory. */
static void bad_pointer(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    hl_import_log(HL_LOG_INFO, 0xFFFFFF00u, 4096);
    hl_return("{}", 2);
}

/* bad_enqueue: enqueues a job properly (where the host offers enqueue),
 * then hands the enqueue import a guest name outside linear memory: the
 * trap ends the call, so neither job is ever inserted. */
static void bad_enqueue(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    hl_enqueue("traps_wasm", "counter", "{}", 2, NULL, 0, NULL, 0);
    hl_import_enqueue(0xFFFFFF00u, 4096, 0, 0, 0, 0, 0, 0, 0, 0);
    hl_return("{}", 2);
}

/* grow {"pages"}: memory.grow by that many 64 KiB pages. */
static void grow(const uint8_t *input, size_t len)
{
    int64_t pages;
    if (!hl_json_get_i64(input, len, "pages", &pages) || pages < 0 || pages > 65536) {
        hl_return_error("grow needs an integer \"pages\" in 0...65536");
        return;
    }
    int64_t before = (int64_t)__builtin_wasm_memory_grow(0, (size_t)pages);
    char out[32] = "{\"before\":";
    size_t n = 10 + hl_format_i64(before, out + 10);
    out[n++] = '}';
    hl_return(out, n);
}

/* counter {} -> {"count"}: a global incremented per call; a trap in between
 * starts it again, because the trapped instance is replaced. */
static void counter(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    static int64_t count;
    count++;
    char out[32] = "{\"count\":";
    size_t n = 9 + hl_format_i64(count, out + 9);
    out[n++] = '}';
    hl_return(out, n);
}

HL_FUNCTIONS({"out_of_bounds", out_of_bounds}, {"divide_by_zero", divide_by_zero}, {"overflow", overflow},
             {"unreachable", unreachable}, {"recurse", recurse}, {"bad_pointer", bad_pointer},
             {"bad_enqueue", bad_enqueue}, {"grow", grow}, {"counter", counter})

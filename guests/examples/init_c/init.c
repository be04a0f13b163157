/*
 * A C guest with an init: it fills a table once per VM (before any call,
 * and before a recycled VM's snapshot), so calls find it ready.
 *
 * For the tests of init failures, what init does is read from `init_mode`,
 * a 32-byte string the tests patch in a copy of this ELF: "ok" (the
 * default), "crash", "loop", "fail" or "final". A guest author never needs
 * such a thing.
 */
#include "hl_guest.h"

static volatile const char init_mode[32] = "HL-TEST-INIT-MODE:ok";

static int64_t cubes[64];
static int64_t inits;   /* how many times init ran in this VM's memory */
static int64_t counter; /* set by init, bumped by calls */

static int mode_is(const char *mode)
{
    const char *prefix = "HL-TEST-INIT-MODE:";
    size_t at = strlen(prefix);
    for (size_t i = 0;; i++) {
        if (at + i >= sizeof init_mode)
            return 0;
        if (init_mode[at + i] != mode[i])
            return 0;
        if (mode[i] == 0)
            return 1;
    }
}

static void setup(void)
{
    if (mode_is("crash"))
        hl_crash();
    if (mode_is("loop"))
        for (;;)
            __asm__ volatile("pause");
    if (mode_is("fail")) {
        hl_return_error("init could not reach its configuration");
        return;
    }
    if (mode_is("final")) {
        hl_return_final_error("init found its configuration invalid");
        return;
    }
    for (int64_t i = 0; i < 64; i++)
        cubes[i] = i * i * i;
    inits++;
    counter = 100;
}

HL_INIT(setup)

static void put_number(const char *prefix, int64_t value)
{
    char out[64];
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    n += hl_format_i64(value, out + n);
    out[n++] = '}';
    hl_return(out, n);
}

/* cube {"n"} -> {"cube"}, from the table init filled. */
static void cube(const uint8_t *input, size_t len)
{
    int64_t n;
    if (!hl_json_get_i64(input, len, "n", &n) || n < 0 || n >= 64) {
        hl_return_final_error("cube needs an integer \"n\" in 0...63");
        return;
    }
    put_number("{\"cube\":", cubes[n]);
}

/* bump -> {"counter"}: 101 on every call in a VM reset to its snapshot,
 * since init left the counter at 100. */
static void bump(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    put_number("{\"counter\":", ++counter);
}

/* inits -> {"inits"}: 1 when init ran exactly once in this VM. */
static void init_count(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    put_number("{\"inits\":", inits);
}

/* touch {"address"}: reads a byte at an address (a memory access
 * violation for unmapped ones), for the crash-symbol tests. */
static void touch(const uint8_t *input, size_t len)
{
    int64_t address;
    if (!hl_json_get_i64(input, len, "address", &address)) {
        hl_return_error("touch needs an integer \"address\"");
        return;
    }
    volatile const uint8_t *pointer = (volatile const uint8_t *)(uintptr_t)address;
    put_number("{\"byte\":", *pointer);
}

HL_FUNCTIONS(
    {"cube", cube},
    {"bump", bump},
    {"inits", init_count},
    {"touch", touch},
)

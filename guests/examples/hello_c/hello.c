/*
 * A guest written in C: the same protocol as the Swift demo, through
 * hl_guest.h. Arguments and results are JSON.
 */
#include "hl_guest.h"

/* echo: the arguments, unchanged. */
static void echo(const uint8_t *input, size_t len)
{
    hl_return(input, len);
}

/* add {"a", "b"} -> {"sum"} */
static void add(const uint8_t *input, size_t len)
{
    int64_t a, b, sum;
    if (!hl_json_get_i64(input, len, "a", &a) || !hl_json_get_i64(input, len, "b", &b)) {
        hl_return_error("add needs integer arguments \"a\" and \"b\"");
        return;
    }
    if (__builtin_add_overflow(a, b, &sum)) {
        hl_return_error("a + b overflows int64");
        return;
    }
    static const char prefix[] = "{\"sum\":";
    char out[sizeof prefix - 1 + HL_I64_MAX_DIGITS + 1];
    size_t n = sizeof prefix - 1;
    memcpy(out, prefix, n);
    n += hl_format_i64(sum, out + n);
    out[n++] = '}';
    hl_return(out, n);
}

/* Spins while `spin` is not 0, until the host stops the call; hello_c_wasm
 * builds this file through Wasm, which has no `pause`. */
static void spin_while(int64_t spin)
{
    volatile int64_t keep = spin;
    while (keep) {
#if defined(__x86_64__)
        __asm__ volatile("pause");
#endif
    }
}

/* log {"message"} -> {} after handing the message to the host's log. */
static void log_message(const uint8_t *input, size_t len)
{
    char *message;
    size_t message_len;
    if (!hl_json_get_string(input, len, "message", &message, &message_len)) {
        hl_return_error("log needs a string argument \"message\"");
        return;
    }
    hl_log(HL_LOG_INFO, message, message_len);
    free(message);
    hl_return("{}", 2);
}

/* log_flood {"lines", "bytes", "level", "spin"} -> {"lines"}: logs `lines`
 * lines of `bytes` 'x's each (1...60000) at `level` (0 debug, 1 info,
 * 2 warning, 3 error; default error), then returns, or with "spin": 1 spins
 * until the host stops it. For tests of the host's log budget and of
 * deadlines while the log's destination is stalled. */
static void log_flood(const uint8_t *input, size_t len)
{
    int64_t lines, bytes, level = HL_LOG_ERROR, spin = 0;
    if (!hl_json_get_i64(input, len, "lines", &lines) || !hl_json_get_i64(input, len, "bytes", &bytes) ||
        lines < 0 || bytes < 1 || bytes > 60000) {
        hl_return_error("log_flood needs integer arguments \"lines\" >= 0 and \"bytes\" in 1...60000");
        return;
    }
    hl_json_get_i64(input, len, "level", &level);
    hl_json_get_i64(input, len, "spin", &spin);
    char *line = malloc((size_t)bytes);
    if (line == NULL) {
        hl_return_error("log_flood: out of memory");
        return;
    }
    memset(line, 'x', (size_t)bytes);
    for (int64_t i = 0; i < lines; i++)
        hl_log((uint32_t)level, line, (size_t)bytes);
    free(line);
    spin_while(spin);
    static const char prefix[] = "{\"lines\":";
    char out[sizeof prefix - 1 + HL_I64_MAX_DIGITS + 1];
    size_t n = sizeof prefix - 1;
    memcpy(out, prefix, n);
    n += hl_format_i64(lines, out + n);
    out[n++] = '}';
    hl_return(out, n);
}

/* spawn {"count", "guest", "spin"} -> {"enqueued"}: asks the host for
 * `count` echo jobs of `guest` (default hello_c; hello_c_wasm names
 * itself) with args {"n": i}, reporting progress as it goes; the first
 * refusal fails the call with the host's reason. With "spin": 1 it then
 * spins until the host stops it. */
static void spawn(const uint8_t *input, size_t len)
{
    int64_t count, spin = 0;
    if (!hl_json_get_i64(input, len, "count", &count) || count < 0 || count > 100000) {
        hl_return_error("spawn needs an integer argument \"count\" in 0...100000");
        return;
    }
    char *guest = NULL;
    size_t guest_len;
    hl_json_get_string(input, len, "guest", &guest, &guest_len);
    hl_json_get_i64(input, len, "spin", &spin);
    static const char prefix[] = "{\"n\":";
    char args[sizeof prefix - 1 + HL_I64_MAX_DIGITS + 1];
    char reason[160];
    for (int64_t i = 0; i < count; i++) {
        size_t n = sizeof prefix - 1;
        memcpy(args, prefix, n);
        n += hl_format_i64(i, args + n);
        args[n++] = '}';
        if (hl_enqueue(guest ? guest : "hello_c", "echo", args, n, NULL, 0, reason, sizeof reason) < 0) {
            free(guest);
            hl_return_error(reason);
            return;
        }
        hl_progress((uint32_t)((i + 1) * 1000000 / count), "spawning", 8);
    }
    free(guest);
    spin_while(spin);
    static const char done[] = "{\"enqueued\":";
    char out[sizeof done - 1 + HL_I64_MAX_DIGITS + 1];
    size_t n = sizeof done - 1;
    memcpy(out, done, n);
    n += hl_format_i64(count, out + n);
    out[n++] = '}';
    hl_return(out, n);
}

HL_FUNCTIONS(
    {"echo", echo},
    {"add", add},
    {"log", log_message},
    {"log_flood", log_flood},
    {"spawn", spawn},
)

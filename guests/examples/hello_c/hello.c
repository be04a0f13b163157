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
    while (spin)
        __asm__ volatile("pause");
    static const char prefix[] = "{\"lines\":";
    char out[sizeof prefix - 1 + HL_I64_MAX_DIGITS + 1];
    size_t n = sizeof prefix - 1;
    memcpy(out, prefix, n);
    n += hl_format_i64(lines, out + n);
    out[n++] = '}';
    hl_return(out, n);
}

/* spawn {"count"} -> {"enqueued"}: asks the host for `count` echo jobs of
 * this guest (args {"n": i}), reporting progress as it goes; the first
 * refusal fails the call with the host's reason. */
static void spawn(const uint8_t *input, size_t len)
{
    int64_t count;
    if (!hl_json_get_i64(input, len, "count", &count) || count < 0 || count > 100000) {
        hl_return_error("spawn needs an integer argument \"count\" in 0...100000");
        return;
    }
    static const char prefix[] = "{\"n\":";
    char args[sizeof prefix - 1 + HL_I64_MAX_DIGITS + 1];
    char reason[160];
    for (int64_t i = 0; i < count; i++) {
        size_t n = sizeof prefix - 1;
        memcpy(args, prefix, n);
        n += hl_format_i64(i, args + n);
        args[n++] = '}';
        if (hl_enqueue("hello_c", "echo", args, n, NULL, 0, reason, sizeof reason) < 0) {
            hl_return_error(reason);
            return;
        }
        hl_progress((uint32_t)((i + 1) * 1000000 / count), "spawning", 8);
    }
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

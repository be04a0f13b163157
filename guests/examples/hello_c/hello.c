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

HL_FUNCTIONS(
    {"echo", echo},
    {"add", add},
    {"log", log_message},
)

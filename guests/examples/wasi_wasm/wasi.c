/*
 * A C program against wasi-libc, built through Wasm (wasi_wasm): stdio,
 * the heap, qsort and the clock work as in any C program; printf's lines
 * reach the guest log and exit() ends the call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl_guest.h"

static int compare(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* sort {"numbers": "3 1 2"} -> {"sorted": "1 2 3"}: parses with strtol,
 * sorts with qsort, formats with snprintf. */
static void sort(const uint8_t *input, size_t len)
{
    char *text;
    size_t text_len;
    if (!hl_json_get_string(input, len, "numbers", &text, &text_len)) {
        hl_return_error("sort needs a string \"numbers\"");
        return;
    }
    size_t count = 0, capacity = 16;
    long *numbers = malloc(capacity * sizeof *numbers);
    char *cursor = text;
    for (;;) {
        char *end;
        long value = strtol(cursor, &end, 10);
        if (end == cursor)
            break;
        if (count == capacity) {
            capacity *= 2;
            numbers = realloc(numbers, capacity * sizeof *numbers);
        }
        numbers[count++] = value;
        cursor = end;
    }
    free(text);
    qsort(numbers, count, sizeof *numbers, compare);
    size_t size = 32 + count * 21;
    char *out = malloc(size);
    int n = snprintf(out, size, "{\"sorted\":\"");
    for (size_t i = 0; i < count; i++)
        n += snprintf(out + n, size - (size_t)n, i ? " %ld" : "%ld", numbers[i]);
    n += snprintf(out + n, size - (size_t)n, "\"}");
    hl_return(out, (size_t)n);
    free(out);
    free(numbers);
}

/* hello {"name"} -> {} after printf("hello, NAME") to stdout (the log). */
static void hello(const uint8_t *input, size_t len)
{
    char *name;
    size_t name_len;
    if (!hl_json_get_string(input, len, "name", &name, &name_len)) {
        hl_return_error("hello needs a string \"name\"");
        return;
    }
    printf("hello, %s\n", name);
    fprintf(stderr, "said hello to %zu bytes of name\n", name_len);
    free(name);
    hl_return("{}", 2);
}

/* clock {} -> {"ns"}: clock_gettime(CLOCK_REALTIME). */
static void clock_now(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char out[48];
    int n = snprintf(out, sizeof out, "{\"ns\":%lld}", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    hl_return(out, (size_t)n);
}

/* exit {"status"}: exit(status) after setting {"exited": true}; status 0
 * keeps that result, any other status is a guest error. */
static void exit_now(const uint8_t *input, size_t len)
{
    int64_t status = 0;
    hl_json_get_i64(input, len, "status", &status);
    hl_return("{\"exited\":true}", 15);
    exit((int)status);
}

HL_FUNCTIONS({"sort", sort}, {"hello", hello}, {"clock", clock_now}, {"exit", exit_now})

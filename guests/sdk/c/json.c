/*
 * Minimal JSON reading for C guests: top-level members of an object are
 * found by scanning, without building a tree, so a member is read without
 * validating the parts of the document that lie after it.
 */
#include "hl_guest.h"

#define NOT_FOUND SIZE_MAX

static size_t skip_space(const uint8_t *json, size_t len, size_t i)
{
    while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
        i++;
    return i;
}

/* i is at an opening quote; returns the index after the closing one. */
static size_t skip_string(const uint8_t *json, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (json[i] == '\\')
            i++;
        else if (json[i] == '"')
            return i + 1;
        else if (json[i] < 0x20)
            return NOT_FOUND;
    }
    return NOT_FOUND;
}

/* Returns the index after the value starting at i. Containers are skipped
 * by bracket depth, scalars up to the next delimiter. */
static size_t skip_value(const uint8_t *json, size_t len, size_t i)
{
    if (i >= len)
        return NOT_FOUND;
    if (json[i] == '"')
        return skip_string(json, len, i);
    if (json[i] == '{' || json[i] == '[') {
        size_t depth = 0;
        while (i < len) {
            uint8_t c = json[i];
            if (c == '"') {
                i = skip_string(json, len, i);
                if (i == NOT_FOUND)
                    return NOT_FOUND;
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return NOT_FOUND;
    }
    size_t start = i;
    while (i < len && json[i] != ',' && json[i] != '}' && json[i] != ']' && json[i] != ' ' && json[i] != '\t' &&
           json[i] != '\n' && json[i] != '\r')
        i++;
    return i == start ? NOT_FOUND : i;
}

static int find_member(const uint8_t *json, size_t len, const char *key, size_t *value_start, size_t *value_end)
{
    size_t key_len = strlen(key);
    size_t i = skip_space(json, len, 0);
    if (i >= len || json[i] != '{')
        return 0;
    i = skip_space(json, len, i + 1);
    while (i < len && json[i] == '"') {
        size_t key_end = skip_string(json, len, i);
        if (key_end == NOT_FOUND)
            return 0;
        int matches = key_end - i - 2 == key_len && memcmp(json + i + 1, key, key_len) == 0;
        i = skip_space(json, len, key_end);
        if (i >= len || json[i] != ':')
            return 0;
        i = skip_space(json, len, i + 1);
        size_t end = skip_value(json, len, i);
        if (end == NOT_FOUND)
            return 0;
        if (matches) {
            *value_start = i;
            *value_end = end;
            return 1;
        }
        i = skip_space(json, len, end);
        if (i >= len || json[i] != ',')
            return 0;
        i = skip_space(json, len, i + 1);
    }
    return 0;
}

int hl_json_get_i64(const uint8_t *json, size_t len, const char *key, int64_t *value)
{
    size_t i, end;
    if (!find_member(json, len, key, &i, &end))
        return 0;
    int negative = json[i] == '-';
    if (negative)
        i++;
    if (i == end || (json[i] == '0' && end - i > 1))
        return 0;
    /* Accumulate negatively: the range of int64_t reaches one further below
     * zero than above it. */
    int64_t n = 0;
    for (; i < end; i++) {
        if (json[i] < '0' || json[i] > '9')
            return 0;
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_sub_overflow(n, json[i] - '0', &n))
            return 0;
    }
    if (!negative && __builtin_mul_overflow(n, -1, &n))
        return 0;
    *value = n;
    return 1;
}

static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits at json[i..i+4). */
static long hex4(const uint8_t *json, size_t end, size_t i)
{
    if (end - i < 4)
        return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int d = hex_digit(json[i + k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(uint8_t *out, uint32_t scalar)
{
    if (scalar < 0x80) {
        out[0] = (uint8_t)scalar;
        return 1;
    }
    if (scalar < 0x800) {
        out[0] = (uint8_t)(0xC0 | scalar >> 6);
        out[1] = (uint8_t)(0x80 | (scalar & 0x3F));
        return 2;
    }
    if (scalar < 0x10000) {
        out[0] = (uint8_t)(0xE0 | scalar >> 12);
        out[1] = (uint8_t)(0x80 | ((scalar >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (scalar & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | scalar >> 18);
    out[1] = (uint8_t)(0x80 | ((scalar >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((scalar >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (scalar & 0x3F));
    return 4;
}

/* Unescapes json(start, end - 1) into out, which has room for the raw
 * length: no escape decodes to more bytes than it occupies. */
static int unescape(const uint8_t *json, size_t start, size_t end, uint8_t *out, size_t *out_len)
{
    size_t n = 0;
    for (size_t i = start + 1; i < end - 1; i++) {
        if (json[i] != '\\') {
            out[n++] = json[i];
            continue;
        }
        i++;
        switch (json[i]) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            long unit = hex4(json, end - 1, i + 1);
            if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
                return 0;
            i += 4;
            uint32_t scalar = (uint32_t)unit;
            if (unit >= 0xD800 && unit <= 0xDBFF) {
                if (end - 1 - (i + 1) < 6 || json[i + 1] != '\\' || json[i + 2] != 'u')
                    return 0;
                long low = hex4(json, end - 1, i + 3);
                if (low < 0xDC00 || low > 0xDFFF)
                    return 0;
                i += 6;
                scalar = 0x10000 + (((uint32_t)unit - 0xD800) << 10) + ((uint32_t)low - 0xDC00);
            }
            n += put_utf8(out + n, scalar);
            break;
        }
        default:
            return 0;
        }
    }
    *out_len = n;
    return 1;
}

int hl_json_get_string(const uint8_t *json, size_t len, const char *key, char **out, size_t *out_len)
{
    size_t start, end;
    if (!find_member(json, len, key, &start, &end) || json[start] != '"')
        return 0;
    uint8_t *buffer = malloc(end - start);
    size_t n;
    if (!unescape(json, start, end, buffer, &n)) {
        free(buffer);
        return 0;
    }
    buffer[n] = '\0';
    *out = (char *)buffer;
    *out_len = n;
    return 1;
}

size_t hl_format_i64(int64_t value, char digits[HL_I64_MAX_DIGITS])
{
    uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
    char reversed[HL_I64_MAX_DIGITS];
    size_t n = 0;
    do {
        reversed[n++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    size_t len = 0;
    if (value < 0)
        digits[len++] = '-';
    while (n > 0)
        digits[len++] = reversed[--n];
    return len;
}

/*
 * Compute-bound functions in plain C over hl_guest.h, built twice: natively
 * (compute) and through wasm32 and wasm2c (compute_wasm, a link to this
 * directory). The results must be the same; hl-bench --wasm compares the
 * two builds' speed.
 */
#include "hl_guest.h"

/* Writes {"KEY":value} to the result. */
static void return_i64(const char *key, int64_t value)
{
    char out[64];
    size_t n = 0;
    out[n++] = '{';
    out[n++] = '"';
    for (const char *k = key; *k && n < 40; k++)
        out[n++] = *k;
    out[n++] = '"';
    out[n++] = ':';
    n += hl_format_i64(value, out + n);
    out[n++] = '}';
    hl_return(out, n);
}

static uint64_t fib_of(uint32_t n)
{
    return n < 2 ? n : fib_of(n - 1) + fib_of(n - 2);
}

/* fib {"n"} -> {"fib"}, by the doubly recursive definition on purpose: a
 * call-heavy benchmark. */
static void fib(const uint8_t *input, size_t len)
{
    int64_t n;
    if (!hl_json_get_i64(input, len, "n", &n) || n < 0 || n > 40) {
        hl_return_error("fib needs an integer \"n\" in 0...40");
        return;
    }
    return_i64("fib", (int64_t)fib_of((uint32_t)n));
}

/* SHA-256 (FIPS 180-4). */
struct sha256 {
    uint32_t state[8];
    uint8_t block[64];
    size_t used;
    uint64_t total;
};

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(uint32_t state[8], const uint8_t *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8 |
               block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + round_constants[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

static void sha256_init(struct sha256 *s)
{
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->state, initial, sizeof initial);
    s->used = 0;
    s->total = 0;
}

static void sha256_update(struct sha256 *s, const uint8_t *bytes, size_t len)
{
    s->total += len;
    while (len > 0) {
        size_t take = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->block + s->used, bytes, take);
        s->used += take;
        bytes += take;
        len -= take;
        if (s->used == 64) {
            sha256_block(s->state, s->block);
            s->used = 0;
        }
    }
}

static void sha256_finish(struct sha256 *s, uint8_t digest[32])
{
    uint64_t bits = s->total * 8;
    uint8_t pad = 0x80;
    sha256_update(s, &pad, 1);
    pad = 0;
    while (s->used != 56)
        sha256_update(s, &pad, 1);
    uint8_t length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, length, 8);
    for (int i = 0; i < 32; i++)
        digest[i] = (uint8_t)(s->state[i / 4] >> (24 - 8 * (i % 4)));
}

/* sha256 {"text"} -> {"hex"}: the digest of the text's UTF-8 bytes; or
 * {"kib"} -> {"hex"}: of that many KiB of the bytes 0, 1, ..., 255, 0, ...,
 * written to the heap first (a memory-heavy benchmark). */
static void sha256(const uint8_t *input, size_t len)
{
    struct sha256 s;
    sha256_init(&s);
    char *text;
    size_t text_len;
    int64_t kib;
    if (hl_json_get_string(input, len, "text", &text, &text_len)) {
        sha256_update(&s, (const uint8_t *)text, text_len);
        free(text);
    } else if (hl_json_get_i64(input, len, "kib", &kib) && kib >= 0 && kib <= 4096) {
        size_t size = (size_t)kib << 10;
        uint8_t *bytes = malloc(size ? size : 1);
        for (size_t i = 0; i < size; i++)
            bytes[i] = (uint8_t)i;
        sha256_update(&s, bytes, size);
        free(bytes);
    } else {
        hl_return_error("sha256 needs a string \"text\" or an integer \"kib\" in 0...4096");
        return;
    }
    uint8_t digest[32];
    sha256_finish(&s, digest);
    static const char hex_digits[] = "0123456789abcdef";
    char out[8 + 64 + 2] = "{\"hex\":\"";
    for (int i = 0; i < 32; i++) {
        out[8 + 2 * i] = hex_digits[digest[i] >> 4];
        out[8 + 2 * i + 1] = hex_digits[digest[i] & 15];
    }
    out[72] = '"';
    out[73] = '}';
    hl_return(out, sizeof out);
}

/* noop {} -> {}: the cost of a call itself. */
static void noop(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    hl_return("{}", 2);
}

HL_FUNCTIONS({"fib", fib}, {"sha256", sha256}, {"noop", noop})

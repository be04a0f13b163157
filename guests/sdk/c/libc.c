/*
 * The few C library functions that Embedded Swift and C guests need.
 * Built with -fno-builtin so the compiler cannot turn these bodies back into
 * calls to themselves.
 */
#include "hl_guest.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    if ((uintptr_t)dst - (uintptr_t)src >= n)
        return memcpy(dst, src, n);
    /* dst overlaps the tail of src: copy backwards, last byte first. */
    uint8_t *d = (uint8_t *)dst + n - 1;
    const uint8_t *s = (const uint8_t *)src + n - 1;
    __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a;
    const uint8_t *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return n;
}

/* Swift's Hasher seeds itself from here. The seed is a fixed sequence, not
 * randomness: a job's results then do not depend on the VM it ran in, and
 * hash flooding inside a one-job sandbox can only slow that job down. */
void arc4random_buf(void *buffer, size_t n)
{
    static uint64_t state = 0x243F6A8885A308D3ull;
    uint8_t *out = buffer;
    uint64_t word = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            /* splitmix64 */
            state += 0x9E3779B97F4A7C15ull;
            word = state;
            word = (word ^ (word >> 30)) * 0xBF58476D1CE4E5B9ull;
            word = (word ^ (word >> 27)) * 0x94D049BB133111EBull;
            word ^= word >> 31;
        }
        out[i] = (uint8_t)(word >> (8 * (i % 8)));
    }
}

/* With no libm here, the two roundings the Embedded stdlib calls are done
 * on the bits: trunc for exact conversions from Double (Int64(exactly:)),
 * ceil for sizing Dictionary and Set storage. */
double trunc(double x)
{
    union {
        double value;
        uint64_t bits;
    } v = {x};
    int exponent = (int)((v.bits >> 52) & 0x7FF) - 1023;
    if (exponent >= 52)
        return x;
    if (exponent < 0) {
        v.bits &= 1ull << 63;
        return v.value;
    }
    v.bits &= ~((1ull << (52 - exponent)) - 1);
    return v.value;
}

double ceil(double x)
{
    double t = trunc(x);
    return t < x ? t + 1.0 : t;
}

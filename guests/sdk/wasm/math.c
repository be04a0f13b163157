/*
 * The roundings wasm2c's output calls, for baseline x86-64 (SSE2 has no
 * rounding instruction). trunc and ceil are in sdk/c/libc.c. Adding and
 * subtracting 2^52 (2^23 for float) rounds to nearest even in the default
 * rounding mode, which guests never change.
 */
#include <stdint.h>

double trunc(double x);
double ceil(double x);

double nearbyint(double x)
{
    const double big = 4503599627370496.0; /* 2^52 */
    double magnitude = __builtin_fabs(x);
    if (!(magnitude < big))
        return x; /* already integral, infinite or NaN */
    volatile double rounded = magnitude + big;
    double result = rounded - big;
    return __builtin_copysign(result, x);
}

float nearbyintf(float x)
{
    const float big = 8388608.0f; /* 2^23 */
    float magnitude = __builtin_fabsf(x);
    if (!(magnitude < big))
        return x;
    volatile float rounded = magnitude + big;
    float result = rounded - big;
    return __builtin_copysignf(result, x);
}

double floor(double x)
{
    double t = trunc(x);
    return t > x ? t - 1.0 : t;
}

float truncf(float x)
{
    return (float)trunc((double)x);
}

float floorf(float x)
{
    return (float)floor((double)x);
}

float ceilf(float x)
{
    return (float)ceil((double)x);
}

/* Freestanding math.h for wasm2c's output. fabs, sqrt and the
 * classification macros are single SSE2 instructions; the roundings need
 * SSE4.1 as instructions, which the baseline guest does not assume, so
 * guests/sdk/wasm/math.c has them (trunc and ceil come from sdk/c/libc.c). */
#ifndef HL_WASM_MATH_H
#define HL_WASM_MATH_H

#define NAN __builtin_nanf("")
#define INFINITY __builtin_inff()
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define signbit(x) __builtin_signbit(x)
#define fabs(x) __builtin_fabs(x)
#define fabsf(x) __builtin_fabsf(x)
#define sqrt(x) __builtin_sqrt(x)
#define sqrtf(x) __builtin_sqrtf(x)
#define copysign(x, y) __builtin_copysign(x, y)
#define copysignf(x, y) __builtin_copysignf(x, y)

double floor(double x);
float floorf(float x);
double ceil(double x);
float ceilf(float x);
double trunc(double x);
float truncf(float x);
double nearbyint(double x);
float nearbyintf(float x);

#endif

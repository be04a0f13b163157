/* Freestanding stdlib.h for wasm2c's output: the guest SDK's allocator. */
#ifndef HL_WASM_STDLIB_H
#define HL_WASM_STDLIB_H

#include <stddef.h>

void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void *realloc(void *pointer, size_t size);
void free(void *pointer);
_Noreturn void abort(void);

#endif

/* Freestanding assert.h for wasm2c's output, whose asserts check that the
 * runtime set itself up: a failure is a crash, never ignored. */
#ifndef HL_WASM_ASSERT_H
#define HL_WASM_ASSERT_H

#define assert(condition) ((condition) ? (void)0 : __builtin_trap())

#endif

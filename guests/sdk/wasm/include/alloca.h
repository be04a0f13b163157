/* Freestanding alloca.h for wasm2c's output. */
#ifndef HL_WASM_ALLOCA_H
#define HL_WASM_ALLOCA_H

#define alloca __builtin_alloca

#endif

/* Freestanding setjmp for wasm2c's header: the Wasm runtime unwinds a trap
 * with these (guests/sdk/wasm/runtime.c has them). Saves RBX, RBP, R12–R15,
 * RSP and the return address. */
#ifndef HL_WASM_SETJMP_H
#define HL_WASM_SETJMP_H

typedef unsigned long jmp_buf[8];

__attribute__((returns_twice)) int setjmp(jmp_buf env);
_Noreturn void longjmp(jmp_buf env, int value);

#endif

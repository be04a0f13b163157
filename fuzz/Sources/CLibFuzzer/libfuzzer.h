/*
 * libFuzzer's entry point for programs that have a main of their own: SwiftPM
 * links every executable with `--defsym main=<module>_main`, so a fuzz target
 * keeps its Swift main and hands control to libFuzzer from there. Only
 * declared here; the fuzz build (-sanitize=fuzzer) links the definition.
 */
#ifndef HL_LIBFUZZER_H
#define HL_LIBFUZZER_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif

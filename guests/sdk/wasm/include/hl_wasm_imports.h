/*
 * Every import a Wasm module may have, with the C signature wasm2c gives it
 * (i32 → uint32_t, i64 → uint64_t; first the importing module's instance of
 * the import module, unused here). imports.c defines them; build.sh
 * compiles each module's glue against this header too, so an import the
 * module declares with other types fails the build instead of running.
 * guests/README.md documents them.
 */
#ifndef HL_WASM_IMPORTS_H
#define HL_WASM_IMPORTS_H

#include <stdint.h>

struct Z_hl_instance_t;
struct Z_wasi_snapshot_preview1_instance_t;
#define HL_WASI struct Z_wasi_snapshot_preview1_instance_t

/* hl: the C SDK's host services. */
void Z_hlZ_set_result(struct Z_hl_instance_t *, uint32_t status, uint32_t bytes, uint32_t len);
void Z_hlZ_return_result(struct Z_hl_instance_t *, uint32_t bytes, uint32_t len);
void Z_hlZ_return_error(struct Z_hl_instance_t *, uint32_t message, uint32_t len);
void Z_hlZ_return_final_error(struct Z_hl_instance_t *, uint32_t message, uint32_t len);
void Z_hlZ_unknown_function(struct Z_hl_instance_t *);
uint32_t Z_hlZ_call_is_listing(struct Z_hl_instance_t *);
void Z_hlZ_list_function(struct Z_hl_instance_t *, uint32_t name, uint32_t len);
void Z_hlZ_log(struct Z_hl_instance_t *, uint32_t level, uint32_t message, uint32_t len);
uint64_t Z_hlZ_wall_clock_ns(struct Z_hl_instance_t *);
uint64_t Z_hlZ_memory_room(struct Z_hl_instance_t *);
uint32_t Z_hlZ_enqueue(struct Z_hl_instance_t *, uint32_t guest, uint32_t guest_len, uint32_t function,
                       uint32_t function_len, uint32_t args, uint32_t args_len, uint32_t options,
                       uint32_t options_len, uint32_t reason, uint32_t reason_capacity);
uint32_t Z_hlZ_progress(struct Z_hl_instance_t *, uint32_t parts_per_million, uint32_t note, uint32_t len);

/* wasi_snapshot_preview1: the subset wasi-libc programs need. */
uint32_t Z_wasi_snapshot_preview1Z_fd_write(HL_WASI *, uint32_t fd, uint32_t iovs, uint32_t iovs_len, uint32_t written);
uint32_t Z_wasi_snapshot_preview1Z_fd_read(HL_WASI *, uint32_t fd, uint32_t iovs, uint32_t iovs_len, uint32_t read);
uint32_t Z_wasi_snapshot_preview1Z_fd_close(HL_WASI *, uint32_t fd);
uint32_t Z_wasi_snapshot_preview1Z_fd_seek(HL_WASI *, uint32_t fd, uint64_t offset, uint32_t whence, uint32_t position);
uint32_t Z_wasi_snapshot_preview1Z_fd_fdstat_get(HL_WASI *, uint32_t fd, uint32_t stat);
uint32_t Z_wasi_snapshot_preview1Z_fd_prestat_get(HL_WASI *, uint32_t fd, uint32_t prestat);
uint32_t Z_wasi_snapshot_preview1Z_fd_prestat_dir_name(HL_WASI *, uint32_t fd, uint32_t path, uint32_t len);
uint32_t Z_wasi_snapshot_preview1Z_args_sizes_get(HL_WASI *, uint32_t count, uint32_t size);
uint32_t Z_wasi_snapshot_preview1Z_args_get(HL_WASI *, uint32_t argv, uint32_t buffer);
uint32_t Z_wasi_snapshot_preview1Z_environ_sizes_get(HL_WASI *, uint32_t count, uint32_t size);
uint32_t Z_wasi_snapshot_preview1Z_environ_get(HL_WASI *, uint32_t environ, uint32_t buffer);
uint32_t Z_wasi_snapshot_preview1Z_clock_time_get(HL_WASI *, uint32_t clock, uint64_t precision, uint32_t time);
uint32_t Z_wasi_snapshot_preview1Z_clock_res_get(HL_WASI *, uint32_t clock, uint32_t resolution);
uint32_t Z_wasi_snapshot_preview1Z_random_get(HL_WASI *, uint32_t buffer, uint32_t len);
uint32_t Z_wasi_snapshot_preview1Z_sched_yield(HL_WASI *);
void Z_wasi_snapshot_preview1Z_proc_exit(HL_WASI *, uint32_t status);

#undef HL_WASI

#endif /* HL_WASM_IMPORTS_H */

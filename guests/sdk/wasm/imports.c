/*
 * The functions a Wasm module imports (hl_wasm_imports.h lists them): `hl`,
 * one-to-one with the C SDK's host services, and the subset of WASI
 * preview 1 that programs built against wasi-libc need to run. Every
 * pointer a module hands over is checked against its linear memory first;
 * one that does not fit ends the call with the trap "bad pointer handed to
 * the host".
 */
#include "hl_guest.h"
#include "hl_wasm.h"
#include "hl_wasm_imports.h"

uint64_t hl_wasm_memory_room(void);
void arc4random_buf(void *buffer, size_t n);

/* --- hl --- */

void Z_hlZ_set_result(struct Z_hl_instance_t *hl, uint32_t status, uint32_t bytes, uint32_t len)
{
    (void)hl;
    hl_set_result(status, hl_wasm_bytes("hl.set_result", bytes, len), len);
}

void Z_hlZ_return_result(struct Z_hl_instance_t *hl, uint32_t bytes, uint32_t len)
{
    (void)hl;
    hl_set_result(HL_STATUS_OK, hl_wasm_bytes("hl.return_result", bytes, len), len);
}

void Z_hlZ_return_error(struct Z_hl_instance_t *hl, uint32_t message, uint32_t len)
{
    (void)hl;
    hl_set_result(HL_STATUS_GUEST_ERROR, hl_wasm_bytes("hl.return_error", message, len), len);
}

void Z_hlZ_return_final_error(struct Z_hl_instance_t *hl, uint32_t message, uint32_t len)
{
    (void)hl;
    hl_set_result(HL_STATUS_FINAL_ERROR, hl_wasm_bytes("hl.return_final_error", message, len), len);
}

uint32_t Z_hlZ_call_is_listing(struct Z_hl_instance_t *hl)
{
    (void)hl;
    return (uint32_t)hl_call_is_listing();
}

void Z_hlZ_list_function(struct Z_hl_instance_t *hl, uint32_t name, uint32_t len)
{
    (void)hl;
    hl_list_function((const char *)hl_wasm_bytes("hl.list_function", name, len), len);
}

void Z_hlZ_unknown_function(struct Z_hl_instance_t *hl)
{
    (void)hl;
    hl_report_unknown_function();
}

void Z_hlZ_log(struct Z_hl_instance_t *hl, uint32_t level, uint32_t message, uint32_t len)
{
    (void)hl;
    hl_log(level, hl_wasm_bytes("hl.log", message, len), len);
}

uint64_t Z_hlZ_wall_clock_ns(struct Z_hl_instance_t *hl)
{
    (void)hl;
    return hl_wall_clock_ns();
}

uint64_t Z_hlZ_memory_room(struct Z_hl_instance_t *hl)
{
    (void)hl;
    return hl_wasm_memory_room();
}

/* Every range is checked before the request is built, the reason buffer
 * too (the host writes a NUL-terminated reason there): a refusal is
 * answered like natively, a bad range traps. Returns the index, or
 * UINT32_MAX (-1 as the module's i32) on refusal. */
uint32_t Z_hlZ_enqueue(struct Z_hl_instance_t *hl, uint32_t guest, uint32_t guest_len, uint32_t function,
                       uint32_t function_len, uint32_t args, uint32_t args_len, uint32_t options,
                       uint32_t options_len, uint32_t reason, uint32_t reason_capacity)
{
    (void)hl;
    static const char import[] = "hl.enqueue";
    const uint8_t *guest_bytes = hl_wasm_bytes(import, guest, guest_len);
    const uint8_t *function_bytes = hl_wasm_bytes(import, function, function_len);
    const uint8_t *args_bytes = hl_wasm_bytes(import, args, args_len);
    const uint8_t *options_bytes = hl_wasm_bytes(import, options, options_len);
    char *reason_bytes = (char *)hl_wasm_bytes(import, reason, reason_capacity);
    long index = hl_enqueue_bytes(guest_bytes, guest_len, function_bytes, function_len, args_bytes, args_len,
                                  options_bytes, options_len, reason_bytes, reason_capacity);
    return index < 0 ? UINT32_MAX : (uint32_t)index;
}

uint32_t Z_hlZ_progress(struct Z_hl_instance_t *hl, uint32_t parts_per_million, uint32_t note, uint32_t len)
{
    (void)hl;
    return (uint32_t)hl_progress(parts_per_million, hl_wasm_bytes("hl.progress", note, len), len);
}

/* --- WASI preview 1 --- */

enum {
    WASI_SUCCESS = 0,
    WASI_EBADF = 8,
    WASI_EINVAL = 28,
    WASI_ESPIPE = 70,
};

/* stdout and stderr, a line at a time, to the guest log. */
static struct {
    char bytes[256];
    size_t len;
} lines[2];

static void flush_line(int stream)
{
    if (lines[stream].len > 0)
        hl_log(stream == 0 ? HL_LOG_INFO : HL_LOG_WARNING, lines[stream].bytes, lines[stream].len);
    lines[stream].len = 0;
}

/* The end of every call flushes what is left of a line. */
void hl_wasm_stdio_flush(void)
{
    flush_line(0);
    flush_line(1);
}

static void put_bytes(int stream, const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] == '\n') {
            flush_line(stream);
            continue;
        }
        if (lines[stream].len == sizeof lines[stream].bytes)
            flush_line(stream);
        lines[stream].bytes[lines[stream].len++] = (char)bytes[i];
    }
}

static void store_u32(uint32_t address, uint32_t value, const char *import)
{
    memcpy(hl_wasm_bytes(import, address, 4), &value, 4);
}

static void store_u64(uint32_t address, uint64_t value, const char *import)
{
    memcpy(hl_wasm_bytes(import, address, 8), &value, 8);
}

/* iovs: iovs_len entries of {u32 buf, u32 len}. */
uint32_t Z_wasi_snapshot_preview1Z_fd_write(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t fd,
                                            uint32_t iovs, uint32_t iovs_len, uint32_t written)
{
    (void)wasi;
    static const char import[] = "fd_write";
    if (fd != 1 && fd != 2)
        return WASI_EBADF;
    const uint8_t *vectors = hl_wasm_bytes(import, iovs, (uint64_t)iovs_len * 8);
    uint64_t total = 0;
    for (uint32_t i = 0; i < iovs_len; i++) {
        uint32_t buf, len;
        memcpy(&buf, vectors + 8 * i, 4);
        memcpy(&len, vectors + 8 * i + 4, 4);
        put_bytes((int)fd - 1, hl_wasm_bytes(import, buf, len), len);
        total += len;
    }
    store_u32(written, (uint32_t)total, import);
    return WASI_SUCCESS;
}

/* stdin is empty. */
uint32_t Z_wasi_snapshot_preview1Z_fd_read(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t fd,
                                           uint32_t iovs, uint32_t iovs_len, uint32_t read)
{
    (void)wasi;
    (void)iovs;
    (void)iovs_len;
    if (fd != 0)
        return WASI_EBADF;
    store_u32(read, 0, "fd_read");
    return WASI_SUCCESS;
}

uint32_t Z_wasi_snapshot_preview1Z_fd_close(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t fd)
{
    (void)wasi;
    (void)fd;
    return WASI_EBADF;
}

uint32_t Z_wasi_snapshot_preview1Z_fd_seek(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t fd,
                                           uint64_t offset, uint32_t whence, uint32_t position)
{
    (void)wasi;
    (void)offset;
    (void)whence;
    (void)position;
    return fd <= 2 ? WASI_ESPIPE : WASI_EBADF;
}

/* The three standard streams are character devices (so wasi-libc buffers
 * stdout by line); there is no other descriptor. */
uint32_t Z_wasi_snapshot_preview1Z_fd_fdstat_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t fd,
                                                 uint32_t stat)
{
    (void)wasi;
    if (fd > 2)
        return WASI_EBADF;
    uint8_t bytes[24] = {0};
    bytes[0] = 2; /* filetype: character_device */
    uint64_t rights = fd == 0 ? (1u << 1) /* fd_read */ : (1u << 6) /* fd_write */;
    memcpy(bytes + 8, &rights, 8);
    memcpy(hl_wasm_bytes("fd_fdstat_get", stat, sizeof bytes), bytes, sizeof bytes);
    return WASI_SUCCESS;
}

/* No preopened directories: wasi-libc's file functions find nothing. */
uint32_t Z_wasi_snapshot_preview1Z_fd_prestat_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t fd,
                                                  uint32_t prestat)
{
    (void)wasi;
    (void)fd;
    (void)prestat;
    return WASI_EBADF;
}

uint32_t Z_wasi_snapshot_preview1Z_fd_prestat_dir_name(struct Z_wasi_snapshot_preview1_instance_t *wasi,
                                                       uint32_t fd, uint32_t path, uint32_t len)
{
    (void)wasi;
    (void)fd;
    (void)path;
    (void)len;
    return WASI_EBADF;
}

/* Arguments and environment are empty. */
static uint32_t empty_sizes(uint32_t count, uint32_t size, const char *import)
{
    store_u32(count, 0, import);
    store_u32(size, 0, import);
    return WASI_SUCCESS;
}

uint32_t Z_wasi_snapshot_preview1Z_args_sizes_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t count,
                                                  uint32_t size)
{
    (void)wasi;
    return empty_sizes(count, size, "args_sizes_get");
}

uint32_t Z_wasi_snapshot_preview1Z_args_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t argv,
                                            uint32_t buffer)
{
    (void)wasi;
    (void)argv;
    (void)buffer;
    return WASI_SUCCESS;
}

uint32_t Z_wasi_snapshot_preview1Z_environ_sizes_get(struct Z_wasi_snapshot_preview1_instance_t *wasi,
                                                     uint32_t count, uint32_t size)
{
    (void)wasi;
    return empty_sizes(count, size, "environ_sizes_get");
}

uint32_t Z_wasi_snapshot_preview1Z_environ_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t environ,
                                               uint32_t buffer)
{
    (void)wasi;
    (void)environ;
    (void)buffer;
    return WASI_SUCCESS;
}

/* Clocks 0 (realtime) and 1 (monotonic) both read the host's wall clock, a
 * host call each; the CPU-time clocks do not exist here. */
uint32_t Z_wasi_snapshot_preview1Z_clock_time_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t clock,
                                                  uint64_t precision, uint32_t time)
{
    (void)wasi;
    (void)precision;
    if (clock > 1)
        return WASI_EINVAL;
    store_u64(time, hl_wall_clock_ns(), "clock_time_get");
    return WASI_SUCCESS;
}

uint32_t Z_wasi_snapshot_preview1Z_clock_res_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t clock,
                                                 uint32_t resolution)
{
    (void)wasi;
    if (clock > 1)
        return WASI_EINVAL;
    store_u64(resolution, 1000, "clock_res_get");
    return WASI_SUCCESS;
}

/* The same fixed sequence native guests' arc4random_buf gives (see
 * sdk/c/libc.c for why it is not randomness). */
uint32_t Z_wasi_snapshot_preview1Z_random_get(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t buffer,
                                              uint32_t len)
{
    (void)wasi;
    arc4random_buf(hl_wasm_bytes("random_get", buffer, len), len);
    return WASI_SUCCESS;
}

uint32_t Z_wasi_snapshot_preview1Z_sched_yield(struct Z_wasi_snapshot_preview1_instance_t *wasi)
{
    (void)wasi;
    return WASI_SUCCESS;
}

void Z_wasi_snapshot_preview1Z_proc_exit(struct Z_wasi_snapshot_preview1_instance_t *wasi, uint32_t status)
{
    (void)wasi;
    hl_wasm_exit(status);
}

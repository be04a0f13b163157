/*
 * hl_abi.h — the guest ABI of hl-worker: the one source of truth shared by the
 * host (Swift, through the CGuestABI module) and the guest SDK (C and
 * Embedded Swift, built by guests/build.sh with -I on this folder).
 *
 * A guest is a static, non-PIE x86-64 ELF linked at HL_IMAGE_BASE. It runs in
 * 64-bit long mode at CPL3 on one vCPU, with no OS and no interrupts. Guest
 * virtual addresses equal guest physical addresses; the host's own
 * structures live below HL_BOOT_INFO_ADDR: the GDT and TSS (mapped
 * supervisor-only, because the hypervisor reads the TSS's I/O bitmap when the
 * guest does `out`) and the page tables (not mapped at all). CPL3 guest code
 * can touch none of them.
 *
 * Memory map (S = the sandbox's memory size; every area page aligned, every
 * gap between areas an unmapped guard page, so overruns fault):
 *
 *   0                    unmapped (null guard)
 *   HL_HOST_AREA_ADDR    host-only: GDT, TSS (supervisor-only), page tables
 *   HL_ENTRY_STUB_ADDR   the host's entry stub, read-only and executable
 *   HL_BOOT_INFO_ADDR    struct hl_boot_info, read-only to the guest
 *   HL_IMAGE_BASE        the ELF's PT_LOAD segments (R/X per segment flags)
 *   ...                  heap        [boot->heap_start,    boot->heap_end)
 *   ...                  input area  [boot->input_addr,    + input_size)   read-only
 *   ...                  output area [boot->output_addr,   + output_size)
 *   ...                  host-call   [boot->hostcall_addr, + hostcall_size)
 *   ...                  stack       [boot->stack_bottom,  boot->stack_top)
 *   S - HL_PAGE_SIZE     unmapped (top guard)
 *
 * A call: the host writes an hl_call_header, the function name and the input
 * bytes to the input area, sets RIP = HL_ENTRY_STUB_ADDR, RSP =
 * boot->stack_top, RFLAGS and every other general register to 0, and runs.
 * The entry stub (host code, which the guest can neither write nor skip)
 * zeroes PKRU where the guest can use it (before its first data access),
 * loads the null selector into DS, ES, FS and GS, zeroes the FS and GS bases
 * where the guest could have changed them (HL_CPU_FSGSBASE), puts every
 * extended state component the guest can reach (x87, MXCSR, XMM, YMM, ZMM,
 * opmask, PKRU, AMX tile configuration) into its initial state with one
 * XRSTOR (FXRSTOR where XSAVE is off), restores RAX, RCX and RDX to 0 and
 * jumps to e_entry; it changes no flag. So every call starts from the same CPU
 * state, whatever an earlier call on this VM or on this host thread left
 * behind: the hypervisor here does not load the selectors the host asks
 * for, and KVM does not reset MXCSR or AVX state through KVM_SET_FPU.
 *
 * The guest runtime dispatches on the name, writes an hl_result_header and
 * the result bytes to the output area, and does `out HL_PORT_DONE`. The host
 * never resumes a guest after HL_PORT_DONE.
 *
 * A host call: the guest writes an hl_hostcall_request and its payload to the
 * host-call area and does `out HL_PORT_HOSTCALL`. The host validates it,
 * writes an hl_hostcall_reply and its payload to the same area, and resumes
 * the guest after the `out`. A malformed request ends the call as a guest
 * fault (the host does not resume).
 *
 * All integers are little-endian; all headers are 16 bytes, naturally aligned.
 */
#ifndef HL_ABI_H
#define HL_ABI_H

#include <stdint.h>

#define HL_ABI_VERSION 1u

/* I/O ports. `hlt` faults at CPL3, so completion is signalled through a
 * port. `out` at CPL3 works through the TSS's I/O permission bitmap, which
 * allows ports below 0x8000 (the host also sets RFLAGS.IOPL = 3, which bare
 * KVM honours and the nested hypervisor here drops). */
#define HL_PORT_DONE 0x7F00u
#define HL_PORT_HOSTCALL 0x7F01u

/* Fixed addresses (the rest of the map is in hl_boot_info). */
#define HL_PAGE_SIZE 0x1000u
#define HL_HOST_AREA_ADDR 0x1000u
#define HL_ENTRY_STUB_ADDR 0x1FE000u
#define HL_BOOT_INFO_ADDR 0x1FF000u
#define HL_IMAGE_BASE 0x200000u

/* Magic numbers, so a guest or host reading garbage notices. */
#define HL_BOOT_MAGIC 0x544F4F424C48ull /* "HLBOOT" */
#define HL_CALL_MAGIC 0x4E494C48u       /* "HLIN" */
#define HL_RESULT_MAGIC 0x54554F48u     /* "HOUT" */
#define HL_HOSTCALL_MAGIC 0x4C434848u   /* "HHCL" */

/* Written by the host once, when the sandbox is built. */
struct hl_boot_info {
    uint64_t magic;         /* HL_BOOT_MAGIC */
    uint32_t abi_version;   /* HL_ABI_VERSION */
    uint32_t reserved;
    uint64_t memory_size;   /* S */
    uint64_t heap_start;
    uint64_t heap_end;
    uint64_t input_addr;
    uint64_t input_size;
    uint64_t output_addr;
    uint64_t output_size;
    uint64_t hostcall_addr;
    uint64_t hostcall_size;
    uint64_t stack_bottom;
    uint64_t stack_top;     /* initial RSP; 16-byte aligned */
    /* What CPL3 code can use here. `cpuid` answers zeros on these hosts, so
     * the host runs a probe once and says. Zero on hosts older than these
     * fields (the boot page is zero-filled). */
    uint64_t xsave_mask;    /* XCR0 as the guest sees it (state components
                             * XSAVE/XRSTOR cover); 0: only FXSAVE works */
    uint64_t cpu_flags;     /* HL_CPU_* */
};

/* hl_boot_info.cpu_flags */
#define HL_CPU_FSGSBASE 1u  /* rdfsbase/wrfsbase and the GS forms work */

/* Input area: header, then name_len bytes of function name (not NUL
 * terminated), then input_len bytes of input. */
struct hl_call_header {
    uint32_t magic;         /* HL_CALL_MAGIC */
    uint32_t name_len;
    uint32_t input_len;
    uint32_t reserved;
};

/* Output area: header, then len bytes: the result on HL_STATUS_OK, a UTF-8
 * message on every other status. */
enum hl_status {
    HL_STATUS_OK = 0,
    HL_STATUS_GUEST_ERROR = 1,       /* the guest's own failure, with message */
    HL_STATUS_UNKNOWN_FUNCTION = 2,  /* no function of that name */
    HL_STATUS_OUT_OF_MEMORY = 3,     /* the guest allocator ran out of heap */
    HL_STATUS_OUTPUT_TOO_LARGE = 4,  /* the result does not fit the output area */
    HL_STATUS_INVALID_INPUT = 5,     /* the runtime could not read the call */
    HL_STATUS_FINAL_ERROR = 6,       /* the guest's own failure, which a retry
                                      * cannot fix: the job is not retried */
};

struct hl_result_header {
    uint32_t magic;         /* HL_RESULT_MAGIC */
    uint32_t status;        /* enum hl_status */
    uint32_t len;
    uint32_t reserved;
};

/* Host functions a guest may call. */
enum hl_hostcall_function {
    /* payload: uint32 level (enum hl_log_level), then the UTF-8 message.
     * reply payload: empty. */
    HL_HOSTCALL_LOG = 1,
    /* payload: empty. reply payload: uint64 nanoseconds since the Unix epoch. */
    HL_HOSTCALL_WALL_CLOCK = 2,
};

enum hl_log_level {
    HL_LOG_DEBUG = 0,
    HL_LOG_INFO = 1,
    HL_LOG_WARNING = 2,
    HL_LOG_ERROR = 3,
};

/* Host-call area, guest → host: header then len bytes of payload. */
struct hl_hostcall_request {
    uint32_t magic;         /* HL_HOSTCALL_MAGIC */
    uint32_t function;      /* enum hl_hostcall_function */
    uint32_t len;
    uint32_t reserved;
};

/* Host-call area, host → guest: header then len bytes of payload. */
enum hl_hostcall_status {
    HL_HOSTCALL_OK = 0,
    HL_HOSTCALL_UNKNOWN = 1,        /* no such host function */
};

struct hl_hostcall_reply {
    uint32_t magic;         /* HL_HOSTCALL_MAGIC */
    uint32_t status;        /* enum hl_hostcall_status */
    uint32_t len;
    uint32_t reserved;
};

/* Reserved call names, answered by the guest runtime rather than by a
 * guest function; jobs cannot name anything starting with HL_RESERVED_PREFIX.
 *
 * HL_CALL_INIT: made once when a VM is built (before a recycled VM's
 * snapshot), only when the ABI note's `init` is not 0; the runtime calls the
 * guest's hl_init(). OK (empty) unless hl_init set another result.
 *
 * HL_CALL_FUNCTIONS: the runtime calls main in listing mode
 * (hl_call_is_listing), the dispatcher names each function once, and the
 * result is OK with each name followed by one NUL byte. */
#define HL_RESERVED_PREFIX "__hl_"
#define HL_CALL_INIT "__hl_init"
#define HL_CALL_FUNCTIONS "__hl_functions"

/* The ABI marker: one ELF note in every guest linked with the SDK runtime,
 * in a PT_NOTE program header, which `guest add` requires. The runtime
 * emits it; `init` is the address of the guest's hl_init, or 0 (a weak
 * reference the linker resolves). */
#define HL_NOTE_NAME "hl-worker"
#define HL_NOTE_ABI 1u
#define HL_NOTE_FLAGS_KNOWN 0u   /* no flags defined yet; others are refused */

struct hl_abi_note_desc {
    uint32_t abi_version;   /* HL_ABI_VERSION */
    uint32_t flags;         /* 0 */
    uint64_t init;          /* address of hl_init, or 0 */
};

struct hl_abi_note {
    uint32_t namesz;        /* sizeof HL_NOTE_NAME: 10 */
    uint32_t descsz;        /* sizeof(struct hl_abi_note_desc): 16 */
    uint32_t type;          /* HL_NOTE_ABI */
    char name[12];          /* HL_NOTE_NAME, NUL, padded to 4 bytes */
    struct hl_abi_note_desc desc;
};

_Static_assert(sizeof(struct hl_abi_note_desc) == 16, "hl_abi_note_desc layout");
_Static_assert(sizeof(struct hl_abi_note) == 40, "hl_abi_note layout");
_Static_assert(sizeof(struct hl_boot_info) == 120, "hl_boot_info layout");
_Static_assert(sizeof(struct hl_call_header) == 16, "hl_call_header layout");
_Static_assert(sizeof(struct hl_result_header) == 16, "hl_result_header layout");
_Static_assert(sizeof(struct hl_hostcall_request) == 16, "hl_hostcall_request layout");
_Static_assert(sizeof(struct hl_hostcall_reply) == 16, "hl_hostcall_reply layout");

#endif /* HL_ABI_H */

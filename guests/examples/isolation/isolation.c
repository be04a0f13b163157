/*
 * The isolation probe: a guest that records the CPU state it is handed at
 * entry, before any of its own code runs, and functions that plant hostile
 * values in every piece of CPU state a CPL3 guest can change.
 *
 * The tests call `state_digest` in a fresh VM and in a recycled VM after each
 * hostile call; the two answers must be equal. The digest covers what CPL3
 * code can observe: general registers, RFLAGS, segment selectors, the FS/GS
 * bases, and the whole XSAVE area (x87 control/status/tag and registers,
 * MXCSR, XMM, YMM, ZMM, opmask, PKRU, AMX tile state, XSTATE_BV) as far as
 * the host says the guest can reach it (hl_boot_info.xsave_mask).
 */
#include "hl_guest.h"

#define BOOT ((const struct hl_boot_info *)(uintptr_t)HL_BOOT_INFO_ADDR)

/* Big enough for the standard-format XSAVE area of every component up to
 * AMX tile data (offset 2816, 8192 bytes). */
#define XSAVE_AREA_SIZE 12288

/* Standard-format XSAVE offsets and sizes (fixed by the architecture). */
enum {
    XCOMP_X87 = 0, XCOMP_SSE = 1, XCOMP_AVX = 2, XCOMP_OPMASK = 5, XCOMP_ZMM_HI256 = 6,
    XCOMP_HI16_ZMM = 7, XCOMP_PKRU = 9, XCOMP_TILECFG = 17, XCOMP_TILEDATA = 18,
};

struct entry_state {
    uint64_t gpr[16];  /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15 */
    uint64_t rflags;
    uint16_t selectors[6]; /* cs ds es fs gs ss */
    uint8_t pad[44];
    uint8_t xsave[XSAVE_AREA_SIZE] __attribute__((aligned(64)));
};
_Static_assert(__builtin_offsetof(struct entry_state, rflags) == 128, "asm offsets");
_Static_assert(__builtin_offsetof(struct entry_state, selectors) == 136, "asm offsets");
_Static_assert(__builtin_offsetof(struct entry_state, xsave) == 192, "asm offsets");

struct entry_state entry_state __attribute__((aligned(64)));

#define STR2(x) #x
#define STR(x) STR2(x)

/* Records the state, then continues into the SDK's own entry. Uses only the
 * stack slot below RSP for RFLAGS, after every register is saved. The XSAVE
 * buffer is zero at entry (it is .bss, and the probe is only read in a fresh
 * or just-reset VM), so nothing runs between the host's stub and the XSAVE
 * but these few instructions. */
__asm__(".section .text.hl_start,\"ax\",@progbits\n"
        ".globl _start\n"
        ".type _start,@function\n"
        "_start:\n"
        "    movq %rax, entry_state+0(%rip)\n"
        "    movq %rbx, entry_state+8(%rip)\n"
        "    movq %rcx, entry_state+16(%rip)\n"
        "    movq %rdx, entry_state+24(%rip)\n"
        "    movq %rsi, entry_state+32(%rip)\n"
        "    movq %rdi, entry_state+40(%rip)\n"
        "    movq %rbp, entry_state+48(%rip)\n"
        "    movq %rsp, entry_state+56(%rip)\n"
        "    movq %r8, entry_state+64(%rip)\n"
        "    movq %r9, entry_state+72(%rip)\n"
        "    movq %r10, entry_state+80(%rip)\n"
        "    movq %r11, entry_state+88(%rip)\n"
        "    movq %r12, entry_state+96(%rip)\n"
        "    movq %r13, entry_state+104(%rip)\n"
        "    movq %r14, entry_state+112(%rip)\n"
        "    movq %r15, entry_state+120(%rip)\n"
        "    pushfq\n"
        "    popq entry_state+128(%rip)\n"
        "    movw %cs, entry_state+136(%rip)\n"
        "    movw %ds, entry_state+138(%rip)\n"
        "    movw %es, entry_state+140(%rip)\n"
        "    movw %fs, entry_state+142(%rip)\n"
        "    movw %gs, entry_state+144(%rip)\n"
        "    movw %ss, entry_state+146(%rip)\n"
        "    movq " STR(HL_BOOT_INFO_ADDR) "+104, %rax\n"
        "    testq %rax, %rax\n"
        "    jz 1f\n"
        "    movl $-1, %eax\n"
        "    movl $-1, %edx\n"
        "    xsave64 entry_state+192(%rip)\n"
        "    jmp hl_sdk_start\n"
        "1:  fxsave64 entry_state+192(%rip)\n"
        "    jmp hl_sdk_start\n"
        ".size _start, . - _start\n"
        ".text\n");

static int has(unsigned component) { return (BOOT->xsave_mask >> component) & 1; }
static int has_fsgsbase(void) { return (BOOT->cpu_flags & HL_CPU_FSGSBASE) != 0; }
static int has_avx512(void) { return has(XCOMP_OPMASK) && has(XCOMP_ZMM_HI256) && has(XCOMP_HI16_ZMM); }

/* ---- output ---- */

struct out {
    char bytes[4096];
    size_t len;
};

static void put(struct out *o, const char *text)
{
    size_t n = strlen(text);
    if (o->len + n > sizeof o->bytes)
        n = sizeof o->bytes - o->len;
    memcpy(o->bytes + o->len, text, n);
    o->len += n;
}

static void put_hex(struct out *o, uint64_t value)
{
    char digits[19] = "0x";
    for (int i = 0; i < 16; i++)
        digits[2 + i] = "0123456789abcdef"[(value >> (60 - 4 * i)) & 0xF];
    digits[18] = 0;
    put(o, digits);
}

static uint64_t fnv1a(const void *bytes, size_t len)
{
    const uint8_t *b = bytes;
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        hash = (hash ^ b[i]) * 0x100000001b3ull;
    return hash;
}

static int all_zero(const uint8_t *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0)
            return 0;
    return 1;
}

/* The x87 part of the legacy region in its initial state: FCW 0x37F, every
 * other field and register zero (abridged tag 0: all empty). */
static int is_initial_x87(const uint8_t *x)
{
    uint16_t fcw;
    memcpy(&fcw, x, 2);
    return fcw == 0x37F && all_zero(x + 2, 22) && all_zero(x + 32, 128);
}

static void put_class(struct out *o, int *first, const char *name, uint64_t value)
{
    put(o, *first ? "\"" : ",\"");
    *first = 0;
    put(o, name);
    put(o, "\":\"");
    put_hex(o, value);
    put(o, "\"");
}

/* state_digest -> {"xsave_mask", "classes": {name: digest}, "skipped": "names",
 *                  "xstate_bv_raw"}.
 * Values that are one register wide are given as they are, wider ones as a
 * 64-bit FNV-1a digest. */
static void state_digest(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    const struct entry_state *s = &entry_state;
    const uint8_t *x = s->xsave;
    struct out o = {.len = 0};
    int first = 1;
    put(&o, "{\"xsave_mask\":\"");
    put_hex(&o, BOOT->xsave_mask);
    put(&o, "\",\"classes\":{");
    put_class(&o, &first, "gpr", fnv1a(s->gpr, sizeof s->gpr));
    put_class(&o, &first, "rflags", s->rflags);
    uint64_t selectors = 0;
    for (int i = 0; i < 6; i++)
        selectors = selectors << 10 | s->selectors[i];
    put_class(&o, &first, "selectors", selectors);
    uint64_t fsbase = 0, gsbase = 0;
    if (has_fsgsbase()) {
        __asm__ volatile("rdfsbase %0" : "=r"(fsbase));
        __asm__ volatile("rdgsbase %0" : "=r"(gsbase));
        put_class(&o, &first, "fs_base", fsbase);
        put_class(&o, &first, "gs_base", gsbase);
    }
    /* Legacy region: FCW FSW FTW FOP FIP FDP, MXCSR, ST0-7, XMM0-15. */
    put_class(&o, &first, "x87_control", fnv1a(x, 24));
    uint64_t mxcsr = 0;
    memcpy(&mxcsr, x + 24, 4);
    put_class(&o, &first, "mxcsr", mxcsr);
    put_class(&o, &first, "x87_registers", fnv1a(x + 32, 128));
    put_class(&o, &first, "xmm", fnv1a(x + 160, 256));
    const char *skipped = "";
    uint64_t xstate_bv = 0;
    if (BOOT->xsave_mask != 0) {
        memcpy(&xstate_bv, x + 512, 8);
        static const struct {
            const char *name;
            unsigned component;
            size_t offset, size;
        } parts[] = {
            {"ymm_upper", XCOMP_AVX, 576, 256},          {"opmask", XCOMP_OPMASK, 1088, 64},
            {"zmm_upper", XCOMP_ZMM_HI256, 1152, 512},   {"zmm16_31", XCOMP_HI16_ZMM, 1664, 1024},
            {"pkru", XCOMP_PKRU, 2688, 8},               {"tilecfg", XCOMP_TILECFG, 2752, 64},
            {"tiledata", XCOMP_TILEDATA, 2816, 8192},
        };
        static char skipped_names[256];
        size_t n = 0;
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            if (has(parts[i].component)) {
                put_class(&o, &first, parts[i].name, fnv1a(x + parts[i].offset, parts[i].size));
            } else {
                size_t l = strlen(parts[i].name);
                if (n + l + 4 < sizeof skipped_names) {
                    if (n > 0)
                        skipped_names[n++] = ',';
                    memcpy(skipped_names + n, parts[i].name, l);
                    n += l;
                }
            }
        }
        skipped_names[n] = 0;
        skipped = skipped_names;
        /* A component may be reported in use while it holds its initial
         * values: the CPU may set XINUSE whenever it likes, and here it does
         * so when the host saves and restores the guest's state around an
         * interrupt. Counted as in use is a component whose contents differ
         * from their initial values; the raw header is reported beside. */
        uint64_t in_use = 0;
        if (!is_initial_x87(x))
            in_use |= 1u << XCOMP_X87;
        if (!all_zero(x + 160, 256) || mxcsr != 0x1F80)
            in_use |= 1u << XCOMP_SSE;
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
            if (has(parts[i].component) && !all_zero(x + parts[i].offset, parts[i].size))
                in_use |= 1ull << parts[i].component;
        put_class(&o, &first, "xstate_bv", xstate_bv & in_use);
    } else {
        skipped = "xsave";
    }
    put(&o, "},\"skipped\":\"");
    put(&o, skipped);
    put(&o, "\",\"xstate_bv_raw\":\"");
    put_hex(&o, xstate_bv);
    put(&o, "\"}");
    hl_return(o.bytes, o.len);
}

/* ---- hostile calls ---- */

static const uint64_t pattern = 0x5A5A5A5AA5A5A5A5ull;

/* Every register class a CPL3 guest can write, set to values no fresh VM
 * has. AMX is planted separately (plant_amx): it needs the host to have
 * granted the tile state, and a fault there must not hide the others. */
static void plant_everything(void)
{
    /* x87: truncating rounding, single precision, two values on the stack. */
    uint16_t fcw = 0x0C7F & ~0x0300;
    __asm__ volatile("fldcw %0\n fld1\n fldpi" : : "m"(fcw));
    /* MXCSR: round toward zero, flush to zero, denormals are zero, every
     * exception flag set (but masked, so this call survives). */
    uint32_t mxcsr = 0xFFFF;
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    __asm__ volatile("pcmpeqb %%xmm0, %%xmm0\n pcmpeqb %%xmm1, %%xmm1\n pcmpeqb %%xmm2, %%xmm2\n"
                     "pcmpeqb %%xmm3, %%xmm3\n pcmpeqb %%xmm4, %%xmm4\n pcmpeqb %%xmm5, %%xmm5\n"
                     "pcmpeqb %%xmm6, %%xmm6\n pcmpeqb %%xmm7, %%xmm7\n pcmpeqb %%xmm8, %%xmm8\n"
                     "pcmpeqb %%xmm9, %%xmm9\n pcmpeqb %%xmm10, %%xmm10\n pcmpeqb %%xmm11, %%xmm11\n"
                     "pcmpeqb %%xmm12, %%xmm12\n pcmpeqb %%xmm13, %%xmm13\n pcmpeqb %%xmm14, %%xmm14\n"
                     "pcmpeqb %%xmm15, %%xmm15" ::: "memory");
    if (has(XCOMP_AVX)) {
        __asm__ volatile("vpcmpeqb %%ymm0, %%ymm0, %%ymm0\n vpcmpeqb %%ymm1, %%ymm1, %%ymm1\n"
                         "vpcmpeqb %%ymm2, %%ymm2, %%ymm2\n vpcmpeqb %%ymm3, %%ymm3, %%ymm3\n"
                         "vpcmpeqb %%ymm4, %%ymm4, %%ymm4\n vpcmpeqb %%ymm5, %%ymm5, %%ymm5\n"
                         "vpcmpeqb %%ymm6, %%ymm6, %%ymm6\n vpcmpeqb %%ymm7, %%ymm7, %%ymm7\n"
                         "vpcmpeqb %%ymm8, %%ymm8, %%ymm8\n vpcmpeqb %%ymm9, %%ymm9, %%ymm9\n"
                         "vpcmpeqb %%ymm10, %%ymm10, %%ymm10\n vpcmpeqb %%ymm11, %%ymm11, %%ymm11\n"
                         "vpcmpeqb %%ymm12, %%ymm12, %%ymm12\n vpcmpeqb %%ymm13, %%ymm13, %%ymm13\n"
                         "vpcmpeqb %%ymm14, %%ymm14, %%ymm14\n vpcmpeqb %%ymm15, %%ymm15, %%ymm15" ::: "memory");
    }
    if (has_avx512()) {
        __asm__ volatile("kxnorw %%k1, %%k1, %%k1\n kxnorw %%k2, %%k2, %%k2\n kxnorw %%k3, %%k3, %%k3\n"
                         "kxnorw %%k4, %%k4, %%k4\n kxnorw %%k5, %%k5, %%k5\n kxnorw %%k6, %%k6, %%k6\n"
                         "kxnorw %%k7, %%k7, %%k7\n"
                         "vpternlogd $0xff, %%zmm0, %%zmm0, %%zmm0\n vpternlogd $0xff, %%zmm15, %%zmm15, %%zmm15\n"
                         "vpternlogd $0xff, %%zmm16, %%zmm16, %%zmm16\n vpternlogd $0xff, %%zmm17, %%zmm17, %%zmm17\n"
                         "vpternlogd $0xff, %%zmm24, %%zmm24, %%zmm24\n vpternlogd $0xff, %%zmm31, %%zmm31, %%zmm31"
                         ::: "memory");
    }
    if (has(XCOMP_PKRU)) {
        /* Denies every key but 0, which all of this guest's pages carry. */
        __asm__ volatile("wrpkru" : : "a"(0xFFFFFFFCu), "c"(0), "d"(0));
    }
    if (has_fsgsbase()) {
        __asm__ volatile("wrfsbase %0\n wrgsbase %0" : : "r"(0x123456789000ull));
    }
    /* Data selectors: SS's selector is a valid data selector whatever the
     * hypervisor's GDT is; null goes into DS. */
    __asm__ volatile("movw %%ss, %%ax\n movw %%ax, %%es\n movw %%ax, %%fs\n movw %%ax, %%gs\n"
                     "xorl %%eax, %%eax\n movw %%ax, %%ds" ::: "rax", "memory");
}

/* Ends the call with every general register and the direction flag set to
 * a pattern, so the next entry shows whether any of them survived. The
 * result must already be written. */
static _Noreturn void done_with_planted_registers(void)
{
    __asm__ volatile("movq %0, %%rbx\n movq %0, %%rcx\n movq %0, %%rsi\n movq %0, %%rdi\n"
                     "movq %0, %%rbp\n movq %0, %%r8\n movq %0, %%r9\n movq %0, %%r10\n"
                     "movq %0, %%r11\n movq %0, %%r12\n movq %0, %%r13\n movq %0, %%r14\n"
                     "movq %0, %%r15\n movq %0, %%rax\n std\n"
                     "movw $" STR(HL_PORT_DONE) ", %%dx\n"
                     "1: outb %%al, %%dx\n jmp 1b"
                     : : "m"(pattern));
    __builtin_unreachable();
}

static void plant(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    hl_return("{}", 2);
    plant_everything();
    done_with_planted_registers();
}

static void plant_crash(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    plant_everything();
    __asm__ volatile("movq %0, %%rbx\n movq %0, %%r15\n ud2" : : "m"(pattern));
}

static void plant_fault(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    plant_everything();
    *(volatile uint64_t *)(uintptr_t)8 = pattern;
}

/* Spins until the host stops it (timeout or cancellation). */
static void plant_spin(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    plant_everything();
    __asm__ volatile("movq %0, %%rbx\n movq %0, %%r15\n 1: jmp 1b" : : "m"(pattern));
}

static void plant_error(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    hl_return_error("planted and failed");
    plant_everything();
    done_with_planted_registers();
}

/* Unmasks every SSE exception: any later inexact division would fault if
 * this MXCSR reached the next call. */
static void poison_mxcsr(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    hl_return("{}", 2);
    uint32_t mxcsr = 0x0000;
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    done_with_planted_registers();
}

/* Denies access to key 0, which every page carries: this call faults at its
 * next memory access, and so would every later call on a VM that kept it. */
static void poison_pkru(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    if (!has(XCOMP_PKRU)) {
        hl_return_error("no PKRU on this host");
        return;
    }
    __asm__ volatile("wrpkru\n ud2" : : "a"(3u), "c"(0), "d"(0));
}

/* Configures AMX tiles (palette 1), where the host lets the guest. */
static void plant_amx(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    if (!has(XCOMP_TILECFG) || !has(XCOMP_TILEDATA)) {
        hl_return_error("no AMX on this host");
        return;
    }
    static uint8_t config[64] __attribute__((aligned(64)));
    memset(config, 0, sizeof config);
    config[0] = 1;  /* palette 1 */
    for (int tile = 0; tile < 8; tile++) {
        config[16 + 2 * tile] = 64;  /* bytes per row */
        config[48 + tile] = 16;      /* rows */
    }
    __asm__ volatile("ldtilecfg %0" : : "m"(config));
    hl_return("{}", 2);
    done_with_planted_registers();
}

/* Floating-point results that MXCSR's rounding and flush-to-zero change:
 * 1/3 (rounding) and the smallest normal double halved (flush to zero). */
static void float_probe(const uint8_t *input, size_t len)
{
    (void)input;
    (void)len;
    volatile double one = 1.0, three = 3.0, tiny = 2.2250738585072014e-308, two = 2.0;
    double third = one / three;
    double half_tiny = tiny / two;
    uint64_t a, b;
    memcpy(&a, &third, 8);
    memcpy(&b, &half_tiny, 8);
    struct out o = {.len = 0};
    put(&o, "{\"third\":\"");
    put_hex(&o, a);
    put(&o, "\",\"half_tiny\":\"");
    put_hex(&o, b);
    put(&o, "\"}");
    hl_return(o.bytes, o.len);
}

HL_FUNCTIONS(
    {"state_digest", state_digest},
    {"plant", plant},
    {"plant_crash", plant_crash},
    {"plant_fault", plant_fault},
    {"plant_spin", plant_spin},
    {"plant_error", plant_error},
    {"poison_mxcsr", poison_mxcsr},
    {"poison_pkru", poison_pkru},
    {"plant_amx", plant_amx},
    {"float_probe", float_probe},
)

/*
 * CKVM — what Swift cannot express of <linux/kvm.h>: ioctl request numbers
 * (function-like macros Swift does not import), a non-variadic ioctl (Swift
 * cannot call variadic C functions), accessors into kvm_run's anonymous union,
 * and the no-op signal used to kick a vCPU out of KVM_RUN. Nothing else.
 */
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <stdint.h>
#include <stddef.h>

/* ioctl request numbers, re-exported as constants Swift can see. */
static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;
static const unsigned long CKVM_CLEAR_DIRTY_LOG = KVM_CLEAR_DIRTY_LOG;
static const unsigned long CKVM_ENABLE_CAP = KVM_ENABLE_CAP;
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_GET_XCRS = KVM_GET_XCRS;
static const unsigned long CKVM_SET_XCRS = KVM_SET_XCRS;
/* The rest of a vCPU's state, saved and restored as one value (VCPUState). */
static const unsigned long CKVM_GET_XSAVE = KVM_GET_XSAVE;
static const unsigned long CKVM_GET_XSAVE2 = KVM_GET_XSAVE2;
static const unsigned long CKVM_SET_XSAVE = KVM_SET_XSAVE;
static const unsigned long CKVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long CKVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_GET_STATS_FD = KVM_GET_STATS_FD;

/* Flags and bits that are macros of expressions, not plain literals. */
static const uint32_t CKVM_MEM_LOG_DIRTY_PAGES = KVM_MEM_LOG_DIRTY_PAGES;
static const uint64_t CKVM_SYNC_X86_REGS = KVM_SYNC_X86_REGS;
static const uint64_t CKVM_SYNC_X86_SREGS = KVM_SYNC_X86_SREGS;
static const uint64_t CKVM_SYNC_X86_EVENTS = KVM_SYNC_X86_EVENTS;

/* ioctl is variadic, which Swift cannot call. */
int ckvm_ioctl(int fd, unsigned long request, void *argument);
int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value);

/* kvm_run's exit data lives in an anonymous union; these name its members. */
static inline struct kvm_run *ckvm_run(void *mapping) { return (struct kvm_run *)mapping; }
static inline __typeof__(((struct kvm_run *)0)->io) *ckvm_run_io(struct kvm_run *run) { return &run->io; }
static inline __typeof__(((struct kvm_run *)0)->mmio) *ckvm_run_mmio(struct kvm_run *run) { return &run->mmio; }
static inline __typeof__(((struct kvm_run *)0)->internal) *ckvm_run_internal(struct kvm_run *run) { return &run->internal; }
static inline __typeof__(((struct kvm_run *)0)->fail_entry) *ckvm_run_fail_entry(struct kvm_run *run) { return &run->fail_entry; }
static inline struct kvm_sync_regs *ckvm_run_sync_regs(struct kvm_run *run) { return &run->s.regs; }

/* immediate_exit is written by the thread that stops a vCPU while the vCPU's
 * own thread may be entering KVM_RUN; a relaxed atomic byte store is enough
 * because the signal that follows orders it for the kernel. */
static inline void ckvm_set_immediate_exit(struct kvm_run *run, uint8_t value) {
    __atomic_store_n(&run->immediate_exit, value, __ATOMIC_SEQ_CST);
}

/* The real-time signal that kicks a vCPU thread out of KVM_RUN. SIGRTMIN is a
 * function call in glibc, so Swift cannot read it as a constant. */
int ckvm_kick_signal(void);
/* Installs a no-op handler for the kick signal (without SA_RESTART, so
 * KVM_RUN returns EINTR). Idempotent. Returns 0 or -errno. */
int ckvm_install_kick_handler(void);

_Static_assert(sizeof(struct kvm_regs) == 144, "kvm_regs layout");
_Static_assert(sizeof(struct kvm_sregs) == 312, "kvm_sregs layout");
_Static_assert(sizeof(struct kvm_xsave) == 4096, "kvm_xsave layout");
_Static_assert(sizeof(struct kvm_xcrs) == 392, "kvm_xcrs layout");
_Static_assert(sizeof(struct kvm_debugregs) == 128, "kvm_debugregs layout");
_Static_assert(sizeof(struct kvm_msr_entry) == 16, "kvm_msr_entry layout");
_Static_assert(sizeof(struct kvm_msrs) == 8, "kvm_msrs header layout");

#endif

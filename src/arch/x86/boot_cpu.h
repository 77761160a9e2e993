/* Entry vCPU states for the kernel loaders, and the memory structures
 * (GDT, identity page tables) those states refer to.
 *
 * Specifications: Intel SDM vol. 3A §3.4.5 (segment descriptors), §4.5
 * (4-level paging, 2 MiB pages), §9.8.5 (entering IA-32e mode), §26.3.1.2
 * (VM-entry checks on guest segment registers, which KVM_SET_SREGS states
 * must pass); Linux Documentation/arch/x86/boot.rst "64-bit Boot Protocol"
 * (__BOOT_CS = 0x10, __BOOT_DS = 0x18); Xen docs/misc/pvh.pandoc and
 * Multiboot 0.6.96 §3.2 (flat 32-bit protected mode, paging off).
 *
 * Invariants: the GDT at LAYOUT_GDT_ADDR holds exactly the descriptors that
 * the hidden segment state describes (selector 0x10 code, 0x18 data, 0x20 a
 * busy TSS), so a guest that reloads a selector gets the same segment. The
 * boot GDT occupies BOOT_CPU_GDT_SIZE bytes. Every guest write goes
 * through guest_mem_write. */
#ifndef SHRIKE_ARCH_X86_BOOT_CPU_H
#define SHRIKE_ARCH_X86_BOOT_CPU_H

#include "arch/x86/cpu_state.h"
#include "vm/memory.h"

#define BOOT_CPU_SEL_CODE 0x10
#define BOOT_CPU_SEL_DATA 0x18
#define BOOT_CPU_SEL_TSS  0x20
/* null, unused, code, data, TSS (16 bytes in long mode) */
#define BOOT_CPU_GDT_ENTRIES 6
#define BOOT_CPU_GDT_SIZE (BOOT_CPU_GDT_ENTRIES * 8)
#define BOOT_CPU_TSS_LIMIT 0x67 /* minimal TSS; the guest loads its own */

/* 64-bit long mode with the first 4 GiB identity-mapped by 2 MiB pages.
 * Clears *s, then fills segments, control registers, RFLAGS and RSP; the
 * caller sets RIP and argument registers. Returns 0 or -EFAULT if the GDT
 * or page tables do not fit in guest memory. */
int boot_cpu_long_mode(const struct guest_mem *mem, struct cpu_state *s);

/* Flat 32-bit protected mode, paging off (PVH and multiboot entry). */
int boot_cpu_protected_mode(const struct guest_mem *mem, struct cpu_state *s);

/* The 8-byte GDT descriptor that encodes a code, data or 32-bit system
 * segment (for a 64-bit TSS this is the low half). */
uint64_t boot_cpu_descriptor(const struct segment *seg);

#endif

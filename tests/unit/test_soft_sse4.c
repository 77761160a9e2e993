/* Soft CPU: SSE4.1 and SSE4.2. The string routines are written the way
 * glibc's SSE4.2 string functions use PCMPISTRI and are checked against
 * the host's C library; the rest checks values from the SDM (CRC32C
 * vectors from RFC 3720 B.4), all also compared with a real CPU by
 * tests/difftest/corpus/sse4.txt. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fpu_harness.h"

static uint32_t f2u(float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	return v;
}

static uint64_t d2u(double f)
{
	uint64_t v;
	memcpy(&v, &f, 8);
	return v;
}

#define ARITH (FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF)

static uint64_t arith_flags(struct harness *h) { return h->state.rflags & ARITH; }

/* Runs code from CODE until RIP leaves it at its end (loops included). */
static void run_to_end(struct harness *h, const uint8_t *code, size_t len)
{
	h->state.rip = CODE;
	harness_sync(h);
	harness_load(h, code, len);
	for (unsigned n = 0; n < 100000 && h->state.rip != CODE + len; n++)
		assert_int_equal(harness_step(h, 1), VCPU_EXIT_DEBUG);
	assert_int_equal(h->state.rip, CODE + len);
}

/* ---- PCMPISTRI as glibc's string functions use it ----
 * (Jump targets in the comments are offsets into each array.) */

/* strlen: EQUAL_EACH against an empty operand finds the first null. */
static const uint8_t strlen_code[] = {
    0x66, 0x0f, 0xef, 0xc0,                     /* pxor xmm0,xmm0 */
    0x48, 0xc7, 0xc0, 0xf0, 0xff, 0xff, 0xff,   /* mov rax,0xfffffffffffffff0 */
    0x48, 0x83, 0xc0, 0x10,                     /* add rax,0x10 */
    0x66, 0x0f, 0x3a, 0x63, 0x04, 0x06, 0x08,   /* pcmpistri xmm0,XMMWORD PTR [rsi+rax*1],0x8 */
    0x75, 0xf3,                                 /* jne 0xb */
    0x48, 0x01, 0xc8,                           /* add rax,rcx */
};

/* strcspn: EQUAL_ANY over the set at [rdi] (CF: a member, ZF: the end). */
static const uint8_t strcspn_code[] = {
    0xf3, 0x0f, 0x6f, 0x0f,                     /* movdqu xmm1,XMMWORD PTR [rdi] */
    0x48, 0xc7, 0xc0, 0xf0, 0xff, 0xff, 0xff,   /* mov rax,0xfffffffffffffff0 */
    0x48, 0x83, 0xc0, 0x10,                     /* add rax,0x10 */
    0x66, 0x0f, 0x3a, 0x63, 0x0c, 0x06, 0x00,   /* pcmpistri xmm1,XMMWORD PTR [rsi+rax*1],0x0 */
    0x77, 0xf3,                                 /* ja 0xb */
    0x72, 0x0b,                                 /* jb 0x25 */
    0x66, 0x0f, 0xef, 0xc0,                     /* pxor xmm0,xmm0 */
    0x66, 0x0f, 0x3a, 0x63, 0x04, 0x06, 0x08,   /* pcmpistri xmm0,XMMWORD PTR [rsi+rax*1],0x8 */
    0x48, 0x01, 0xc8,                           /* add rax,rcx */
};

/* strspn: EQUAL_ANY with negative polarity: the first non-member, where
 * the end of the string counts as one. */
static const uint8_t strspn_code[] = {
    0xf3, 0x0f, 0x6f, 0x0f,                     /* movdqu xmm1,XMMWORD PTR [rdi] */
    0x48, 0xc7, 0xc0, 0xf0, 0xff, 0xff, 0xff,   /* mov rax,0xfffffffffffffff0 */
    0x48, 0x83, 0xc0, 0x10,                     /* add rax,0x10 */
    0x66, 0x0f, 0x3a, 0x63, 0x0c, 0x06, 0x10,   /* pcmpistri xmm1,XMMWORD PTR [rsi+rax*1],0x10 */
    0x73, 0xf3,                                 /* jae 0xb */
    0x48, 0x01, 0xc8,                           /* add rax,rcx */
};

/* strchr (as an index, -1 when absent): the set is one character. */
static const uint8_t strchr_code[] = {
    0xf3, 0x0f, 0x6f, 0x0f,                     /* movdqu xmm1,XMMWORD PTR [rdi] */
    0x48, 0xc7, 0xc0, 0xf0, 0xff, 0xff, 0xff,   /* mov rax,0xfffffffffffffff0 */
    0x48, 0x83, 0xc0, 0x10,                     /* add rax,0x10 */
    0x66, 0x0f, 0x3a, 0x63, 0x0c, 0x06, 0x00,   /* pcmpistri xmm1,XMMWORD PTR [rsi+rax*1],0x0 */
    0x77, 0xf3,                                 /* ja 0xb */
    0x72, 0x09,                                 /* jb 0x23 */
    0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff,   /* mov rax,0xffffffffffffffff */
    0xeb, 0x03,                                 /* jmp 0x26 */
    0x48, 0x01, 0xc8,                           /* add rax,rcx */
    0x90,                                       /* nop */
};

/* strstr (as an index, -1 when absent): EQUAL_ORDERED finds where the
 * needle may start, including a partial match at the end of the block,
 * which the next block (started there) confirms or not. */
static const uint8_t strstr_code[] = {
    0xf3, 0x0f, 0x6f, 0x0f,                     /* movdqu xmm1,XMMWORD PTR [rdi] */
    0x31, 0xc0,                                 /* xor eax,eax */
    0x66, 0x0f, 0x3a, 0x63, 0x0c, 0x06, 0x0c,   /* pcmpistri xmm1,XMMWORD PTR [rsi+rax*1],0xc */
    0x72, 0x08,                                 /* jb 0x17 */
    0x74, 0x18,                                 /* je 0x29 */
    0x48, 0x83, 0xc0, 0x10,                     /* add rax,0x10 */
    0xeb, 0xef,                                 /* jmp 0x6 */
    0x48, 0x01, 0xc8,                           /* add rax,rcx */
    0x66, 0x0f, 0x3a, 0x63, 0x0c, 0x06, 0x0c,   /* pcmpistri xmm1,XMMWORD PTR [rsi+rax*1],0xc */
    0x73, 0xe3,                                 /* jae 0x6 */
    0x85, 0xc9,                                 /* test ecx,ecx */
    0x74, 0x09,                                 /* je 0x30 */
    0xeb, 0xdd,                                 /* jmp 0x6 */
    0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff,   /* mov rax,0xffffffffffffffff */
    0x90,                                       /* nop */
};

static uint64_t run_str(struct harness *h, const uint8_t *code, size_t len, const char *s,
			const char *set)
{
	uint8_t buf[256] = {0};
	size_t sl = strlen(s) + 1;
	unsigned misalign = (unsigned)(sl % 16);
	memcpy(buf + misalign, s, sl);
	put(h, DATA + 0x1000, buf, sizeof(buf));
	memset(buf, 0, sizeof(buf));
	memcpy(buf, set, strlen(set));
	put(h, DATA + 0x2000, buf, 16);
	h->state.gpr[GPR_RSI] = DATA + 0x1000 + misalign;
	h->state.gpr[GPR_RDI] = DATA + 0x2000;
	run_to_end(h, code, len);
	return h->state.gpr[GPR_RAX];
}

static const char *const strings[] = {
    "", "a", "hello, world", "0123456789abcde", "0123456789abcdef", "0123456789abcdefg",
    "The quick brown fox jumps over the lazy dog; then it naps.",
    "\x80\xff\x7f high bytes \xc3\xa9t\xc3\xa9", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
    "  \t leading blanks and a trailing one ",
};

static void test_pcmpistri_strlen(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++)
		assert_int_equal(run_str(h, strlen_code, sizeof(strlen_code), strings[k], ""),
				 strlen(strings[k]));
	harness_free(h);
}

static void test_pcmpistri_strcspn_strspn_strchr(void **state)
{
	(void)state;
	static const char *const sets[] = {"a", " ,;.", "abcdefghijklmnop", "\x80\xff", "xyz", "e"};
	struct harness *h = fpu_harness_new(true);
	for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++) {
		const char *s = strings[k];
		for (size_t j = 0; j < sizeof(sets) / sizeof(sets[0]); j++) {
			const char *set = sets[j];
			assert_int_equal(run_str(h, strcspn_code, sizeof(strcspn_code), s, set),
					 strcspn(s, set));
			assert_int_equal(run_str(h, strspn_code, sizeof(strspn_code), s, set),
					 strspn(s, set));
			if (strlen(set) != 1)
				continue;
			const char *p = strchr(s, set[0]);
			assert_int_equal(run_str(h, strchr_code, sizeof(strchr_code), s, set),
					 p ? (uint64_t)(p - s) : ~0ULL);
		}
	}
	harness_free(h);
}

static void test_pcmpistri_strstr(void **state)
{
	(void)state;
	static const char *const needles[] = {"o", "lo", "world", "fox jumps", "dog;", "abcdefg",
					      "zzz", "ab", "napsX", "aab"};
	struct harness *h = fpu_harness_new(true);
	for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++)
		for (size_t j = 0; j < sizeof(needles) / sizeof(needles[0]); j++) {
			const char *s = strings[k], *n = needles[j];
			uint64_t r = run_str(h, strstr_code, sizeof(strstr_code), s, n);
			const char *p = strstr(s, n);
			assert_int_equal(r, p ? (uint64_t)(p - s) : ~0ULL);
		}
	harness_free(h);
}

/* ---- PCMPxSTRx: outputs and flags of single instructions ---- */

static void pcmp_run(struct harness *h, uint8_t opcode, uint8_t imm, bool rexw)
{
	uint8_t code[7] = {0x66, 0x0f, 0x3a, opcode, 0xca, imm}; /* xmm1, xmm2 */
	size_t len = 6;
	if (rexw) {
		memmove(code + 2, code + 1, 5);
		code[1] = 0x48;
		len = 7;
	}
	h->state.rflags |= FLAG_AF | FLAG_PF;
	run(h, code, len, 1);
	assert_int_equal(h->state.rip, CODE + len);
	assert_int_equal(h->state.rflags & (FLAG_AF | FLAG_PF), 0);
}

static void test_pcmpistr_outputs(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	xset_bytes(h, 1, "abc\0zzzzzzzzzzzz");
	xset_bytes(h, 2, "xbyza-cab\0\0\0\0\0\0\0");
	/* EQUAL_ANY: matches at 1, 4, 6, 7, 8; text length 9, set length 3. */
	pcmp_run(h, 0x63, 0x00, false);
	assert_int_equal(h->state.gpr[GPR_RCX], 1);
	assert_int_equal(arith_flags(h), FLAG_CF | FLAG_ZF | FLAG_SF);
	pcmp_run(h, 0x63, 0x40, false); /* most significant */
	assert_int_equal(h->state.gpr[GPR_RCX], 8);
	pcmp_run(h, 0x62, 0x00, false); /* bit mask in XMM0 */
	assert_xmm(h, 0, 0x1d2, 0, 0, 0);
	pcmp_run(h, 0x62, 0x40, false); /* byte mask */
	assert_xmm(h, 0, 0x0000ff00, 0xffff00ff, 0xff, 0);
	pcmp_run(h, 0x62, 0x10, false); /* negative: the invalid tail too */
	assert_xmm(h, 0, 0xfe2d, 0, 0, 0);
	assert_int_equal(arith_flags(h), FLAG_CF | FLAG_ZF | FLAG_SF | FLAG_OF);
	pcmp_run(h, 0x62, 0x30, false); /* masked negative: valid text only */
	assert_xmm(h, 0, 0x02d, 0, 0, 0);
	/* EQUAL_EACH: 'b' at 1; true where both are invalid (9-15), false
	 * where only one is (3-8). */
	pcmp_run(h, 0x62, 0x08, false);
	assert_xmm(h, 0, 0xfe02, 0, 0, 0);
	/* EQUAL_ORDERED with the needle "abc" absent: nothing, not even past
	 * the end of the text (a valid needle never matches there). */
	pcmp_run(h, 0x63, 0x0c, false);
	assert_int_equal(h->state.gpr[GPR_RCX], 16);
	/* RANGES with "az": every letter of the text. */
	xset_bytes(h, 1, "az\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
	pcmp_run(h, 0x62, 0x04, false);
	assert_xmm(h, 0, 0x1df, 0, 0, 0);
	/* no null anywhere: ZF = SF = 0, and no match: ECX = 16, CF = 0 */
	xset_bytes(h, 1, "0000000000000000");
	xset_bytes(h, 2, "abcdefghijklmnop");
	pcmp_run(h, 0x63, 0x00, false);
	assert_int_equal(h->state.gpr[GPR_RCX], 16);
	assert_int_equal(arith_flags(h), 0);
	/* EQUAL_ORDERED: a partial match at the end of the block counts */
	xset_bytes(h, 1, "opq\0............");
	pcmp_run(h, 0x63, 0x0c, false);
	assert_int_equal(h->state.gpr[GPR_RCX], 14);
	assert_int_equal(arith_flags(h), FLAG_CF | FLAG_SF);
	harness_free(h);
}

static void test_pcmpistr_words_signed(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint16_t a[8] = {0x8000, 0xfff0, 0x0010, 0x0070, 0, 0, 0, 0}; /* two ranges */
	uint16_t b[8] = {0x8001, 0xffff, 0x0011, 0x7fff, 0xfff0, 0x0070, 0x0005, 0};
	xset_bytes(h, 1, a);
	xset_bytes(h, 2, b);
	pcmp_run(h, 0x62, 0x07, false); /* signed words, ranges: -32768..-16, 16..112 */
	assert_xmm(h, 0, 0x35, 0, 0, 0);
	pcmp_run(h, 0x62, 0x05, false); /* unsigned words: 0x8000..0xfff0 (empty 0x10..0x70 too) */
	assert_xmm(h, 0, 0x35, 0, 0, 0);
	a[0] = 0xfff8;
	xset_bytes(h, 1, a);
	pcmp_run(h, 0x62, 0x07, false); /* signed: -8..-16 is empty */
	assert_xmm(h, 0, 0x24, 0, 0, 0);
	pcmp_run(h, 0x62, 0x05, false); /* unsigned: 0xfff8..0xfff0 is empty too */
	assert_xmm(h, 0, 0x24, 0, 0, 0);
	pcmp_run(h, 0x62, 0x45, false); /* word mask */
	assert_xmm(h, 0, 0, 0x0000ffff, 0xffff0000, 0);
	pcmp_run(h, 0x63, 0x45, false);
	assert_int_equal(h->state.gpr[GPR_RCX], 5);
	assert_int_equal(arith_flags(h), FLAG_CF | FLAG_ZF | FLAG_SF);
	harness_free(h);
}

/* Explicit lengths: |EAX|, |EDX| saturated to 16 (8 for words); RAX and
 * RDX with REX.W. */
static void test_pcmpestr_lengths(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	xset_bytes(h, 1, "abababababababab");
	xset_bytes(h, 2, "ab\0ab\0ab\0ab\0ab\0a");
	struct {
		uint64_t rax, rdx;
		bool rexw;
		uint32_t mask;
		uint64_t flags;
	} cases[] = {
	    {2, 5, false, 0x1b, FLAG_CF | FLAG_ZF | FLAG_SF | FLAG_OF},
	    {(uint64_t)-2, (uint64_t)-5, false, 0x1b, FLAG_CF | FLAG_ZF | FLAG_SF | FLAG_OF},
	    {1, 100, false, 0x9249, FLAG_CF | FLAG_SF | FLAG_OF},
	    {0, 16, false, 0, 0 | FLAG_SF},
	    {0x100000001ULL, 0xffffffff00000003ULL, false, 0x1,
	     FLAG_CF | FLAG_ZF | FLAG_SF | FLAG_OF},
	    {0x100000001ULL, 0xffffffff00000003ULL, true, 0xb6db, FLAG_CF | FLAG_OF},
	    {0x80000000ULL, 0x80000000ULL, false, 0xb6db, FLAG_CF | FLAG_OF},
	    {0x8000000000000000ULL, 0xfffffffffffffffdULL, true, 0x3, FLAG_CF | FLAG_ZF | FLAG_OF},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		h->state.gpr[GPR_RAX] = cases[k].rax;
		h->state.gpr[GPR_RDX] = cases[k].rdx;
		pcmp_run(h, 0x60, 0x00, cases[k].rexw); /* EQUAL_ANY, bit mask */
		assert_xmm(h, 0, cases[k].mask, 0, 0, 0);
		assert_int_equal(arith_flags(h), cases[k].flags);
	}
	/* words: lengths saturate to 8 */
	h->state.gpr[GPR_RAX] = 9;
	h->state.gpr[GPR_RDX] = 8;
	h->state.gpr[GPR_RCX] = ~0ULL;
	pcmp_run(h, 0x61, 0x11, false); /* negative polarity, index */
	assert_int_equal(arith_flags(h), FLAG_CF);
	assert_int_equal(h->state.gpr[GPR_RCX], 1); /* 32-bit write: RCX zero-extended */
	harness_free(h);
}

/* ---- CRC32 ---- */

static const uint8_t crc_bytes_code[] = {
    0xb8, 0xff, 0xff, 0xff, 0xff,               /* mov eax,0xffffffff */
    0xf2, 0x0f, 0x38, 0xf0, 0x06,               /* crc32 eax,BYTE PTR [rsi] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x01,         /* crc32 eax,BYTE PTR [rsi+0x1] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x02,         /* crc32 eax,BYTE PTR [rsi+0x2] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x03,         /* crc32 eax,BYTE PTR [rsi+0x3] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x04,         /* crc32 eax,BYTE PTR [rsi+0x4] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x05,         /* crc32 eax,BYTE PTR [rsi+0x5] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x06,         /* crc32 eax,BYTE PTR [rsi+0x6] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x07,         /* crc32 eax,BYTE PTR [rsi+0x7] */
    0xf2, 0x0f, 0x38, 0xf0, 0x46, 0x08,         /* crc32 eax,BYTE PTR [rsi+0x8] */
    0xf7, 0xd0,                                 /* not eax */
};

static const uint8_t crc_mixed_code[] = {
    0x48, 0xc7, 0xc1, 0xff, 0xff, 0xff, 0xff,   /* mov rcx,0xffffffffffffffff */
    0xf2, 0x48, 0x0f, 0x38, 0xf1, 0x0e,         /* crc32 rcx,QWORD PTR [rsi] */
    0xf2, 0x0f, 0x38, 0xf0, 0x4e, 0x08,         /* crc32 ecx,BYTE PTR [rsi+0x8] */
    0xf7, 0xd1,                                 /* not ecx */
    0xba, 0xff, 0xff, 0xff, 0xff,               /* mov edx,0xffffffff */
    0x66, 0xf2, 0x0f, 0x38, 0xf1, 0x16,         /* crc32 edx,WORD PTR [rsi] */
    0xf2, 0x0f, 0x38, 0xf1, 0x56, 0x02,         /* crc32 edx,DWORD PTR [rsi+0x2] */
    0x66, 0xf2, 0x0f, 0x38, 0xf1, 0x56, 0x06,   /* crc32 edx,WORD PTR [rsi+0x6] */
    0xf2, 0x0f, 0x38, 0xf0, 0x56, 0x08,         /* crc32 edx,BYTE PTR [rsi+0x8] */
    0xf7, 0xd2,                                 /* not edx */
};

static const uint8_t crc_32bytes_code[] = {
    0x48, 0xb8, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,/* movabs rax,0xffffffff */
    0xf2, 0x48, 0x0f, 0x38, 0xf1, 0x06,         /* crc32 rax,QWORD PTR [rsi] */
    0xf2, 0x48, 0x0f, 0x38, 0xf1, 0x46, 0x08,   /* crc32 rax,QWORD PTR [rsi+0x8] */
    0xf2, 0x48, 0x0f, 0x38, 0xf1, 0x46, 0x10,   /* crc32 rax,QWORD PTR [rsi+0x10] */
    0xf2, 0x48, 0x0f, 0x38, 0xf1, 0x46, 0x18,   /* crc32 rax,QWORD PTR [rsi+0x18] */
    0xf7, 0xd0,                                 /* not eax */
};

static uint32_t crc_of(struct harness *h, const uint8_t *data32)
{
	put(h, DATA, data32, 32);
	run(h, crc_32bytes_code, sizeof(crc_32bytes_code), 6);
	return (uint32_t)h->state.gpr[GPR_RAX];
}

static void test_crc32_vectors(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	put(h, DATA, "123456789", 9);
	run(h, crc_bytes_code, sizeof(crc_bytes_code), 11);
	assert_int_equal(h->state.gpr[GPR_RAX], 0xe3069283); /* CRC-32C check value */
	run(h, crc_mixed_code, sizeof(crc_mixed_code), 10);
	assert_int_equal(h->state.gpr[GPR_RCX], 0xe3069283);
	assert_int_equal(h->state.gpr[GPR_RDX], 0xe3069283);
	/* RFC 3720 (iSCSI) B.4 */
	uint8_t d[32];
	memset(d, 0, 32);
	assert_int_equal(crc_of(h, d), 0x8a9136aa);
	memset(d, 0xff, 32);
	assert_int_equal(crc_of(h, d), 0x62a8ab43);
	for (int k = 0; k < 32; k++)
		d[k] = (uint8_t)k;
	assert_int_equal(crc_of(h, d), 0x46dd794e);
	for (int k = 0; k < 32; k++)
		d[k] = (uint8_t)(31 - k);
	assert_int_equal(crc_of(h, d), 0x113fdb5c);
	harness_free(h);
}

static const uint8_t crc_forms_code[] = {
    0xf2, 0x48, 0x0f, 0x38, 0xf1, 0xc1,         /* crc32 rax,rcx */
    0xf2, 0x0f, 0x38, 0xf0, 0xd4,               /* crc32 edx,ah */
    0xf2, 0x40, 0x0f, 0x38, 0xf0, 0xfe,         /* crc32 edi,sil */
    0x66, 0xf2, 0x0f, 0x38, 0xf1, 0xd9,         /* crc32 ebx,cx */
    0xf2, 0x66, 0x0f, 0x38, 0xf1, 0xeb,         /* crc32 ebp,bx */
    0xf2, 0x4c, 0x0f, 0x38, 0xf0, 0x06,         /* crc32 r8,BYTE PTR [rsi] */
};

/* Operand forms: REX.W destinations are r64 with the upper half zero;
 * AH without REX, SIL with it; 66 F2 and F2 66 both give the 16-bit
 * source; the destination is r32 in every other case. */
static void test_crc32_forms(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint8_t one = 0x31;
	put(h, DATA, &one, 1);
	h->state.gpr[GPR_RAX] = 0xdeadbeef00000000ULL;
	h->state.gpr[GPR_RCX] = 0;
	h->state.gpr[GPR_RDX] = 0xffffffff00000000ULL;
	h->state.gpr[GPR_RBX] = 0xffffffffffff0000ULL;
	h->state.gpr[GPR_RBP] = 0x1234;
	h->state.gpr[GPR_RDI] = 0xffffffff00000000ULL;
	h->state.gpr[GPR_R8] = 0xffffffffffffffffULL;
	run(h, crc_forms_code, sizeof(crc_forms_code), 6);
	assert_int_equal(h->state.gpr[GPR_RAX], 0); /* crc(0, eight zero bytes) */
	assert_int_equal(h->state.gpr[GPR_RDX], 0); /* AH = 0, crc(0, 0) = 0 */
	assert_int_equal(h->state.gpr[GPR_RDI], 0); /* SIL = 0 (RSI = DATA) */
	assert_int_equal(h->state.gpr[GPR_RBX] >> 32, 0); /* 16-bit source, r32 destination */
	assert_int_equal(h->state.gpr[GPR_RBP] >> 32, 0);
	assert_int_equal(h->state.gpr[GPR_R8], 0x6f0a661c); /* crc(~0, 0x31) */
	/* The same two 16-bit forms give the same result from the same input. */
	h->state.gpr[GPR_RBX] = 0x1111;
	h->state.gpr[GPR_RBP] = 0x1111;
	h->state.gpr[GPR_RCX] = 0xabcd;
	static const uint8_t two[] = {0x66, 0xf2, 0x0f, 0x38, 0xf1, 0xd9,  /* crc32 ebx, cx */
				      0xf2, 0x66, 0x0f, 0x38, 0xf1, 0xe9}; /* crc32 ebp, cx */
	run(h, two, sizeof(two), 2);
	assert_int_equal(h->state.gpr[GPR_RBX], 0x317835e9);
	assert_int_equal(h->state.gpr[GPR_RBP], 0x317835e9);
	/* LOCK is #UD; without F2 the opcode is MOVBE, which shrike lacks */
	static const uint8_t lock_crc[] = {0xf0, 0xf2, 0x0f, 0x38, 0xf0, 0x06};
	run(h, lock_crc, sizeof(lock_crc), 1);
	assert_fault(h, EXC_UD);
	static const uint8_t movbe[] = {0x0f, 0x38, 0xf0, 0x06};
	run(h, movbe, sizeof(movbe), 1);
	assert_fault(h, EXC_UD);
	harness_free(h);
}

/* ---- ROUND ---- */

static const uint8_t roundps_code[] = {
    0x66, 0x0f, 0x3a, 0x08, 0xc8, 0x00,         /* roundps xmm1,xmm0,0x0 */
    0x66, 0x0f, 0x3a, 0x08, 0xd0, 0x01,         /* roundps xmm2,xmm0,0x1 */
    0x66, 0x0f, 0x3a, 0x08, 0xd8, 0x02,         /* roundps xmm3,xmm0,0x2 */
    0x66, 0x0f, 0x3a, 0x08, 0xe0, 0x03,         /* roundps xmm4,xmm0,0x3 */
    0x66, 0x0f, 0x3a, 0x08, 0xe8, 0x04,         /* roundps xmm5,xmm0,0x4 */
};

static void test_round_modes(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	xset(h, 0, f2u(2.5f), f2u(-1.5f), f2u(0.5f), f2u(-0.25f));
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT | (1u << MXCSR_RC_SHIFT); /* RC = down */
	run(h, roundps_code, sizeof(roundps_code), 5);
	assert_xmm(h, 1, f2u(2.0f), f2u(-2.0f), f2u(0.0f), f2u(-0.0f)); /* nearest even */
	assert_xmm(h, 2, f2u(2.0f), f2u(-2.0f), f2u(0.0f), f2u(-1.0f)); /* down */
	assert_xmm(h, 3, f2u(3.0f), f2u(-1.0f), f2u(1.0f), f2u(-0.0f)); /* up */
	assert_xmm(h, 4, f2u(2.0f), f2u(-1.0f), f2u(0.0f), f2u(-0.0f)); /* truncate */
	assert_xmm(h, 5, f2u(2.0f), f2u(-2.0f), f2u(0.0f), f2u(-1.0f)); /* MXCSR.RC */
	assert_int_equal(cpu_of(h)->fpu.mxcsr & MXCSR_FLAGS, MXCSR_PE);
	harness_free(h);
}

static const uint8_t round_special_code[] = {
    0x66, 0x0f, 0x3a, 0x09, 0xc8, 0x08,         /* roundpd xmm1,xmm0,0x8 */
    0x66, 0x0f, 0x3a, 0x0b, 0x56, 0x03, 0x02,   /* roundsd xmm2,QWORD PTR [rsi+0x3],0x2 */
    0x66, 0x0f, 0x3a, 0x0a, 0xdc, 0x0b,         /* roundss xmm3,xmm4,0xb */
    0x66, 0x0f, 0x3a, 0x09, 0xee, 0x00,         /* roundpd xmm5,xmm6,0x0 */
};

/* PE suppressed by imm8[3]; SNaN -> QNaN with IE; infinities and large
 * values unchanged; the scalar forms keep the destination's upper part
 * (and read unaligned memory); DAZ makes a denormal a signed zero. */
static void test_round_special(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint64_t v[2] = {d2u(0.75), d2u(4503599627370495.5)};
	memcpy(cpu_of(h)->fpu.xmm[0], v, 16);
	uint64_t m = d2u(-1.25);
	put(h, DATA + 3, &m, 8);
	xset(h, 2, 1, 2, 3, 4);
	xset(h, 3, 5, 6, 7, 8);
	xset(h, 4, 0x7f800001, 0, 0, 0);
	uint64_t w[2] = {0x8000000000000001ULL, 0x7ff0000000000000ULL};
	memcpy(cpu_of(h)->fpu.xmm[6], w, 16);
	cpu_of(h)->fpu.mxcsr = MXCSR_DEFAULT | MXCSR_DAZ;
	run(h, round_special_code, sizeof(round_special_code), 4);
	uint64_t r[2];
	memcpy(r, cpu_of(h)->fpu.xmm[1], 16);
	assert_int_equal(r[0], d2u(1.0));
	assert_int_equal(r[1], d2u(4503599627370496.0));
	memcpy(r, cpu_of(h)->fpu.xmm[2], 16);
	assert_int_equal(r[0], d2u(-1.0));
	assert_int_equal(r[1], 0x0000000400000003ULL);
	assert_xmm(h, 3, 0x7fc00001, 6, 7, 8);
	memcpy(r, cpu_of(h)->fpu.xmm[5], 16);
	assert_int_equal(r[0], 0x8000000000000000ULL);
	assert_int_equal(r[1], 0x7ff0000000000000ULL);
	assert_int_equal(cpu_of(h)->fpu.mxcsr & MXCSR_FLAGS, MXCSR_IE | MXCSR_PE);
	harness_free(h);
}

/* An unmasked exception leaves the destination and raises #XM (#UD
 * without CR4.OSXMMEXCPT); the flag is recorded. */
static void test_round_unmasked(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	uint32_t mx = MXCSR_DEFAULT & ~(MXCSR_PE << MXCSR_MASKS_SHIFT);
	/* roundps xmm1, xmm0, 0 and roundps xmm1, xmm0, 8 */
	static const uint8_t inexact[] = {0x66, 0x0f, 0x3a, 0x08, 0xc8, 0x00};
	static const uint8_t quiet[] = {0x66, 0x0f, 0x3a, 0x08, 0xc8, 0x08};
	xset(h, 0, f2u(1.5f), 0, 0, 0);
	xset(h, 1, 9, 9, 9, 9);
	cpu_of(h)->fpu.mxcsr = mx;
	run(h, inexact, sizeof(inexact), 1);
	assert_fault(h, EXC_XM);
	assert_xmm(h, 1, 9, 9, 9, 9);
	assert_int_equal(cpu_of(h)->fpu.mxcsr, mx | MXCSR_PE);
	cpu_of(h)->fpu.mxcsr = mx;
	run(h, quiet, sizeof(quiet), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(quiet));
	assert_xmm(h, 1, f2u(2.0f), 0, 0, 0);
	assert_int_equal(cpu_of(h)->fpu.mxcsr, mx);
	h->state.cr4 &= ~CR4_OSXMMEXCPT;
	run(h, inexact, sizeof(inexact), 1);
	assert_fault(h, EXC_UD);
	harness_free(h);
}

/* ---- PTEST ---- */

static void test_ptest_flags(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t ptest[] = {0x66, 0x0f, 0x38, 0x17, 0xc1}; /* ptest xmm0, xmm1 */
	struct {
		uint32_t a, b;
		uint64_t flags;
	} cases[] = {
	    {0x00, 0x00, FLAG_ZF | FLAG_CF}, {0xf0, 0x0f, FLAG_ZF}, {0x0f, 0x0f, FLAG_CF},
	    {0x03, 0x06, 0}, {0xff, 0x00, FLAG_ZF | FLAG_CF},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		xset(h, 0, 0, 0, 0, cases[k].a);
		xset(h, 1, 0, 0, 0, cases[k].b);
		h->state.rflags |= ARITH;
		run(h, ptest, sizeof(ptest), 1);
		assert_int_equal(arith_flags(h), cases[k].flags);
	}
	harness_free(h);
}

/* ---- integer, blends, conversions ---- */

static const uint8_t int_code[] = {
    0x66, 0x0f, 0x6f, 0xd1,                     /* movdqa xmm2,xmm1 */
    0x66, 0x0f, 0x38, 0x40, 0xd3,               /* pmulld xmm2,xmm3 */
    0x66, 0x0f, 0x6f, 0xe1,                     /* movdqa xmm4,xmm1 */
    0x66, 0x0f, 0x38, 0x39, 0xe3,               /* pminsd xmm4,xmm3 */
    0x66, 0x0f, 0x6f, 0xe9,                     /* movdqa xmm5,xmm1 */
    0x66, 0x0f, 0x38, 0x3f, 0xeb,               /* pmaxud xmm5,xmm3 */
    0x66, 0x0f, 0x6f, 0xf1,                     /* movdqa xmm6,xmm1 */
    0x66, 0x0f, 0x38, 0x2b, 0xf3,               /* packusdw xmm6,xmm3 */
    0x66, 0x0f, 0x6f, 0xf9,                     /* movdqa xmm7,xmm1 */
    0x66, 0x0f, 0x38, 0x28, 0xfb,               /* pmuldq xmm7,xmm3 */
    0x66, 0x44, 0x0f, 0x6f, 0xc1,               /* movdqa xmm8,xmm1 */
    0x66, 0x44, 0x0f, 0x38, 0x37, 0xc3,         /* pcmpgtq xmm8,xmm3 */
    0x66, 0x44, 0x0f, 0x38, 0x41, 0xcb,         /* phminposuw xmm9,xmm3 */
    0x66, 0x44, 0x0f, 0x38, 0x20, 0x56, 0x01,   /* pmovsxbw xmm10,QWORD PTR [rsi+0x1] */
    0x66, 0x44, 0x0f, 0x38, 0x35, 0xd9,         /* pmovzxdq xmm11,xmm1 */
    0x66, 0x44, 0x0f, 0x6f, 0xe1,               /* movdqa xmm12,xmm1 */
    0x66, 0x44, 0x0f, 0x38, 0x10, 0xe3,         /* pblendvb xmm12,xmm3,xmm0 */
    0x66, 0x44, 0x0f, 0x6f, 0xe9,               /* movdqa xmm13,xmm1 */
    0x66, 0x44, 0x0f, 0x3a, 0x0c, 0xeb, 0x05,   /* blendps xmm13,xmm3,0x5 */
};

static void test_integer_and_blends(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	xset(h, 1, 0xffffffff, 0x7fffffff, 0x10000, 5);
	xset(h, 3, 0xfffffffe, 3, 0x10000, 0x80000000);
	xset(h, 0, 0x80000080, 0, 0x80, 0);
	uint8_t m[8] = {0x80, 0x7f, 0xff, 0x01, 0x00, 0xfe, 0x81, 0x02};
	put(h, DATA + 1, m, 8);
	run(h, int_code, sizeof(int_code), 19);
	assert_xmm(h, 2, 2, 0x7ffffffd, 0, 0x80000000);
	assert_xmm(h, 4, 0xfffffffe, 3, 0x10000, 0x80000000);
	assert_xmm(h, 5, 0xffffffff, 0x7fffffff, 0x10000, 0x80000000);
	assert_xmm(h, 6, 0xffff0000, 0x0005ffff, 0x00030000, 0x0000ffff); /* unsigned saturation */
	assert_xmm(h, 7, 2, 0, 0x00000000, 0x1); /* (-1)(-2) = 2, 0x10000^2 = 2^32 */
	assert_xmm(h, 8, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff);
	assert_xmm(h, 9, 0x00030000, 0, 0, 0); /* the first 0, word 3 */
	assert_xmm(h, 10, 0x007fff80, 0x0001ffff, 0xfffe0000, 0x0002ff81);
	assert_xmm(h, 11, 0xffffffff, 0, 0x7fffffff, 0);
	assert_xmm(h, 12, 0xfffffffe, 0x7fffffff, 0x10000, 5);
	assert_xmm(h, 13, 0xfffffffe, 0x7fffffff, 0x10000, 5);
	harness_free(h);
}

static const uint8_t extract_code[] = {
    0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff,   /* mov rax,0xffffffffffffffff */
    0x48, 0xc7, 0xc1, 0xff, 0xff, 0xff, 0xff,   /* mov rcx,0xffffffffffffffff */
    0x66, 0x0f, 0x3a, 0x14, 0xc8, 0x11,         /* pextrb eax,xmm1,0x11 */
    0x66, 0x0f, 0xc5, 0xc9, 0x07,               /* pextrw ecx,xmm1,0x7 */
    0x66, 0x48, 0x0f, 0x3a, 0x16, 0xca, 0x01,   /* pextrq rdx,xmm1,0x1 */
    0x66, 0x0f, 0x3a, 0x16, 0x4e, 0x01, 0x03,   /* pextrd DWORD PTR [rsi+0x1],xmm1,0x3 */
    0x66, 0x0f, 0x3a, 0x17, 0xcf, 0x02,         /* extractps edi,xmm1,0x2 */
    0x66, 0x0f, 0x3a, 0x20, 0xd4, 0x0f,         /* pinsrb xmm2,esp,0xf */
    0x66, 0x0f, 0x3a, 0x21, 0xd9, 0xb1,         /* insertps xmm3,xmm1,0xb1 */
};

static void test_insert_extract(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	xset(h, 1, 0x44332211, 0x88776655, 0xccbbaa99, 0x00ffeedd);
	xset(h, 2, 0, 0, 0, 0);
	xset(h, 3, 1, 2, 3, 4);
	h->state.gpr[GPR_RSP] = 0x12345678;
	run(h, extract_code, sizeof(extract_code), 9);
	assert_int_equal(h->state.gpr[GPR_RAX], 0x22); /* index mod 16, zero-extended */
	assert_int_equal(h->state.gpr[GPR_RCX], 0x00ff);
	assert_int_equal(h->state.gpr[GPR_RDX], 0x00ffeeddccbbaa99ULL);
	uint32_t d;
	guest_mem_read(&h->mem, DATA + 1, &d, 4);
	assert_int_equal(d, 0x00ffeedd);
	assert_int_equal(h->state.gpr[GPR_RDI], 0xccbbaa99);
	assert_xmm(h, 2, 0, 0, 0, 0x78000000);
	assert_xmm(h, 3, 0, 2, 3, 0xccbbaa99); /* source dword 2 to dword 3; dword 0 zeroed */
	harness_free(h);
}

static const uint8_t dpps_code[] = {
    0x66, 0x0f, 0x3a, 0x40, 0xc1, 0xf1,         /* dpps xmm0,xmm1,0xf1 */
    0x66, 0x0f, 0x3a, 0x40, 0xd1, 0x3e,         /* dpps xmm2,xmm1,0x3e */
    0x66, 0x0f, 0x3a, 0x41, 0xdc, 0x22,         /* dppd xmm3,xmm4,0x22 */
};

static void test_dot_products(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	xset(h, 0, f2u(1), f2u(2), f2u(3), f2u(4));
	xset(h, 1, f2u(5), f2u(6), f2u(7), f2u(8));
	xset(h, 2, f2u(1), f2u(1), f2u(1), f2u(1));
	uint64_t a[2] = {d2u(0.5), d2u(3)}, b[2] = {d2u(4), d2u(-2)};
	memcpy(cpu_of(h)->fpu.xmm[3], a, 16);
	memcpy(cpu_of(h)->fpu.xmm[4], b, 16);
	run(h, dpps_code, sizeof(dpps_code), 3);
	assert_xmm(h, 0, f2u(70), 0, 0, 0);
	assert_xmm(h, 2, 0, f2u(11), f2u(11), f2u(11));
	uint64_t r[2];
	memcpy(r, cpu_of(h)->fpu.xmm[3], 16);
	assert_int_equal(r[0], 0);
	assert_int_equal(r[1], d2u(-6.0)); /* only product 1 (3 * -2) */
	assert_int_equal(cpu_of(h)->fpu.mxcsr & MXCSR_FLAGS, 0);
	harness_free(h);
}

/* ---- alignment and preconditions ---- */

static void test_alignment_and_preconditions(void **state)
{
	(void)state;
	struct harness *h = fpu_harness_new(true);
	static const uint8_t pmulld_mis[] = {0x66, 0x0f, 0x38, 0x40, 0x46, 0x01};     /* [rsi+1] */
	static const uint8_t movntdqa_mis[] = {0x66, 0x0f, 0x38, 0x2a, 0x46, 0x08};   /* [rsi+8] */
	static const uint8_t roundps_mis[] = {0x66, 0x0f, 0x3a, 0x08, 0x46, 0x04, 0}; /* [rsi+4] */
	static const uint8_t ptest_mis[] = {0x66, 0x0f, 0x38, 0x17, 0x46, 0x02};      /* [rsi+2] */
	static const uint8_t pmovzx_mis[] = {0x66, 0x0f, 0x38, 0x30, 0x46, 0x01};     /* [rsi+1] */
	static const uint8_t pcmpistri_mis[] = {0x66, 0x0f, 0x3a, 0x63, 0x46, 0x01, 0};
	static const uint8_t pcmpestrm_mis[] = {0x66, 0x0f, 0x3a, 0x60, 0x46, 0x03, 0};
	static const uint8_t roundss_mis[] = {0x66, 0x0f, 0x3a, 0x0a, 0x46, 0x03, 0};
	static const uint8_t insertps_mis[] = {0x66, 0x0f, 0x3a, 0x21, 0x46, 0x05, 0};
	static const uint8_t crc32_b[] = {0xf2, 0x0f, 0x38, 0xf0, 0x06};
	xset(h, 0, 7, 7, 7, 7);
	run(h, pmulld_mis, sizeof(pmulld_mis), 1);
	assert_fault(h, EXC_GP);
	assert_xmm(h, 0, 7, 7, 7, 7);
	run(h, movntdqa_mis, sizeof(movntdqa_mis), 1);
	assert_fault(h, EXC_GP);
	run(h, roundps_mis, sizeof(roundps_mis), 1);
	assert_fault(h, EXC_GP);
	run(h, ptest_mis, sizeof(ptest_mis), 1);
	assert_fault(h, EXC_GP);
	run(h, pmovzx_mis, sizeof(pmovzx_mis), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(pmovzx_mis));
	run(h, pcmpistri_mis, sizeof(pcmpistri_mis), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(pcmpistri_mis));
	run(h, pcmpestrm_mis, sizeof(pcmpestrm_mis), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(pcmpestrm_mis));
	run(h, roundss_mis, sizeof(roundss_mis), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(roundss_mis));
	run(h, insertps_mis, sizeof(insertps_mis), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(insertps_mis));
	/* #UD without OSFXSR or with EM, #NM with TS; CRC32 is not SSE */
	h->state.cr0 |= CR0_EM;
	run(h, pcmpistri_mis, sizeof(pcmpistri_mis), 1);
	assert_fault(h, EXC_UD);
	run(h, crc32_b, sizeof(crc32_b), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(crc32_b));
	h->state.cr0 &= ~CR0_EM;
	h->state.cr0 |= CR0_TS;
	run(h, pmovzx_mis, sizeof(pmovzx_mis), 1);
	assert_fault(h, EXC_NM);
	run(h, crc32_b, sizeof(crc32_b), 1);
	assert_int_equal(h->state.rip, CODE + sizeof(crc32_b));
	h->state.cr0 &= ~CR0_TS;
	h->state.cr4 &= ~CR4_OSFXSR;
	run(h, pmovzx_mis, sizeof(pmovzx_mis), 1);
	assert_fault(h, EXC_UD);
	harness_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pcmpistri_strlen),
	    cmocka_unit_test(test_pcmpistri_strcspn_strspn_strchr),
	    cmocka_unit_test(test_pcmpistri_strstr),
	    cmocka_unit_test(test_pcmpistr_outputs),
	    cmocka_unit_test(test_pcmpistr_words_signed),
	    cmocka_unit_test(test_pcmpestr_lengths),
	    cmocka_unit_test(test_crc32_vectors),
	    cmocka_unit_test(test_crc32_forms),
	    cmocka_unit_test(test_round_modes),
	    cmocka_unit_test(test_round_special),
	    cmocka_unit_test(test_round_unmasked),
	    cmocka_unit_test(test_ptest_flags),
	    cmocka_unit_test(test_integer_and_blends),
	    cmocka_unit_test(test_insert_extract),
	    cmocka_unit_test(test_dot_products),
	    cmocka_unit_test(test_alignment_and_preconditions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

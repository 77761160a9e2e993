# shrike build. `make` builds build/shrike; `make test` runs every test level;
# `make fuzz` builds the libFuzzer targets; `make run` boots the default guest.
CC      ?= gcc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc -MMD -MP
LDLIBS  += -lpthread

BUILD   := build
SRCS    := $(shell find src -name '*.c' | sort)
LIBSRCS := $(filter-out src/main.c,$(SRCS))
OBJS    := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIBSRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

.PHONY: all clean test unit e2e fuzz fuzz-run guests deps guest run bench
all: $(BUILD)/shrike

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libshrike.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/shrike: $(BUILD)/obj/main.o $(BUILD)/libshrike.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: cmocka, no KVM needed. TEST_LDLIBS adds libraries one test
# needs; the emitter's test checks encodings with libcapstone, which shrike
# itself never links.
$(BUILD)/tests/test_jit_emit: TEST_LDLIBS := -lcapstone
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libshrike.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libshrike.a $(LDLIBS) -lcmocka $(TEST_LDLIBS)

unit: $(UNIT_BINS)
	tests/run-unit.sh $(UNIT_BINS)

# Fuzz targets: libFuzzer + ASan/UBSan, built from the sources with clang.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -Wall -Wextra -Werror \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJS := $(patsubst src/%.c,$(BUILD)/fuzz/obj/%.o,$(LIBSRCS))
$(BUILD)/fuzz/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/fuzz/libshrike-fuzz.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/fuzz_jit_emit: FUZZ_LDLIBS := -lcapstone
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/fuzz/libshrike-fuzz.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -Itests/fuzz -Itests/unit -o $@ $< $(BUILD)/fuzz/libshrike-fuzz.a -lpthread $(FUZZ_LDLIBS)

fuzz: $(FUZZ_BINS)

fuzz-run: fuzz guests
	tests/run-fuzz.sh $(FUZZ_BINS)

# Test guests: small kernels built from tests/guests with the host toolchain.
guests:
	$(MAKE) -C tests/guests

e2e: all guests
	tests/e2e/run.sh
	tests/e2e/linux-soft.sh
	tests/e2e/virtio.sh
	tests/e2e/smc.sh
	tests/e2e/distro.sh

# One-time host setup (packages), then the default Debian guest.
deps:
	scripts/install-deps.sh

guest:
	guest/build.sh

test: deps
	$(MAKE) all
	$(MAKE) CC=clang BUILD=build/clang all
	$(MAKE) unit
	$(MAKE) fuzz-run
	$(MAKE) guest
	$(MAKE) e2e
	$(MAKE) difftest

# Differential tester: KVM (the real processor) is the oracle for the soft
# CPU, and the soft engine's interpreter for its translator (no KVM needed:
# runs everywhere); built from tests/difftest/*.c against the library, like
# unit tests.
DIFFTEST_SRCS := $(wildcard tests/difftest/*.c)
DIFFTEST_OBJS := $(patsubst tests/difftest/%.c,$(BUILD)/difftest-obj/%.o,$(DIFFTEST_SRCS))
$(BUILD)/difftest-obj/%.o: tests/difftest/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/difftest -c $< -o $@

$(BUILD)/difftest: $(DIFFTEST_OBJS) $(BUILD)/libshrike.a
	$(CC) $(CFLAGS) -o $@ $(DIFFTEST_OBJS) $(BUILD)/libshrike.a $(LDLIBS)

.PHONY: difftest
# Generated sequences: DIFFTEST_ITERATIONS in 64-bit mode and a quarter of
# that in each 32-bit mode (16000 → 24000 sequences, ~1.5 M instructions)
# against KVM, then the 64-bit ones again, translator against interpreter.
DIFFTEST_ITERATIONS ?= 16000
difftest: $(BUILD)/difftest all guests
	DIFFTEST_ITERATIONS=$(DIFFTEST_ITERATIONS) $(BUILD)/difftest
	tests/difftest/guests.sh

# Records what the real processor (through KVM) does with every test of
# `make difftest`, and the test guests' outputs, for machines without
# /dev/kvm (tests/difftest/README.md, "Recorded results"). Needs KVM; a few
# minutes. Run it, and commit tests/difftest/recorded/, whenever the
# generator, the corpus, groups.enabled or flagmask.c change.
.PHONY: difftest-record
difftest-record: $(BUILD)/difftest all guests
	env -u DIFFTEST_GROUPS $(BUILD)/difftest --count $(DIFFTEST_ITERATIONS) \
		--record tests/difftest/recorded/results.txt
	tests/difftest/guests.sh --record

run: deps all guest
	$(BUILD)/shrike run $(RUN_ARGS)

bench: all guests guest
	bench/io-exit.sh
	bench/soft-mips.sh
	bench/boot.sh
	bench/guest-work.sh
	bench/virtio.sh
	bench/distro-boot.sh

clean:
	rm -rf $(BUILD)
	-$(MAKE) -C tests/guests clean

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

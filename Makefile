# libaibox — build, test, install.  `make` builds everything; `make check` installs
# missing Debian packages (as root), builds and runs every test.
#
# Targets: all, check, check-mpi, check-arm64, check-nosimd, check-clang, asan, fuzz, deps, bench, example, install, deb, check-deb, clean.
#
# ARCH=arm64: the same build cross-compiled for aarch64 (Debian's
# crossbuild-essential-arm64 against the arm64 multiarch -dev packages) into
# build-arm64; `make check-arm64` installs those, builds and runs the unit
# tests under qemu-aarch64.

PREFIX  ?= /usr/local
DESTDIR ?=
ifeq ($(ARCH),arm64)
BUILD   ?= build-arm64
CC      := aarch64-linux-gnu-gcc
# GCC 12's aarch64 vectoriser crashes (ICE in vect_transform_reduction) on a
# double fmin/fmax reduction over floats, a pattern the tests' error checks use
# everywhere. The library avoids it (plain comparisons) and keeps -O3's loop
# vectoriser; the programs around it (tests, tools, benches, examples), whose
# own loops are not where time goes, are compiled without it.
APP_CFLAGS := -fno-tree-loop-vectorize
# The emulator: -U keeps this machine's x86 OPENBLAS_CORETYPE out of the
# emulated process (aarch64 OpenBLAS would not know the name).
QEMU_ARM64 := qemu-aarch64 -U OPENBLAS_CORETYPE
else ifneq ($(ARCH),)
$(error ARCH=$(ARCH): only ARCH=arm64 (cross build) or no ARCH (this machine) are known)
endif
BUILD   ?= build

# VERSION is the release (aibox_version()); ABI numbers the binary
# interface: the SONAME is libaibox.so.$(ABI) and it changes whenever a
# public signature or struct does (0.1 -> 0.2 changed them: ABI 1; 0.3 appended
# fields to aibox_fit_opts for the anomaly method: ABI 2; 0.4 appended the
# auto-encoder's options and the tiling to it, the half bank to
# aibox_patchcore_opts: ABI 3; 0.5 appended float_only to aibox_import_opts and
# fake_quant_weights to aibox_train_opts:
# ABI 4).
VERSION := 0.7.1
ABI     := 4

CC      ?= cc
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS_ALL := -Iinclude -Ilib -I/usr/include/stb -D_GNU_SOURCE $(CPPFLAGS)
# -ffp-contract=off: the same arithmetic from every compiler. It is GCC's
# default with -std=c11; clang's default fuses a * b + c into one FMA wherever
# the target has FMA (the AVX2 kernels' scalar tails), which changes last bits.
CFLAGS_ALL   := -std=c11 $(WARN) -ffp-contract=off -fPIC -fvisibility=hidden -pthread $(CFLAGS) $(EXTRA_CFLAGS)
LIBS    := -lopenblas -lstb -lcjson -lsndfile -lsamplerate -lkissfft-float -lz -lm -lpthread
LDFLAGS_ALL := -pthread $(LDFLAGS) $(EXTRA_LDFLAGS)

# lib/mpi is not libaibox: it is libaibox_mpi (MPI=1, below)
LIB_SRC  := $(sort $(filter-out lib/mpi/%,$(wildcard lib/*/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(sort $(wildcard tools/aibox-*.c))
TOOLS    := $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%)
# what the tools share (tools/*.c other than the commands), as an archive:
# each command links only the parts it uses
TOOL_SHARED := $(filter-out tools/aibox-%.c,$(wildcard tools/*.c))
TOOL_LIB := $(BUILD)/tools/libtools.a
EX_SRC   := $(sort $(wildcard examples/*.c))
EXAMPLES := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
TEST_SRC := $(sort $(filter-out tests/mpi/%,$(wildcard tests/*/test_*.c)))
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON := $(wildcard tests/common/*.c)

STATIC := $(BUILD)/libaibox.a
SONAME := libaibox.so.$(ABI)
SHARED := $(BUILD)/$(SONAME)

# MPI=1 adds, beside the normal build (which never links MPI):
# $(BUILD)/libaibox_mpi.a (lib/mpi: an aibox_comm on MPI_COMM_WORLD), the tools
# that run across ranks built against it (-DAIBOX_MPI, tools/mpi) into
# $(BUILD)/mpi/bin, and the tests of tests/mpi, which start mpirun.
MPI_LIB   := $(BUILD)/libaibox_mpi.a
MPI_TOOLS := $(BUILD)/mpi/bin/aibox-train $(BUILD)/mpi/bin/aibox-infer
MPI_TESTS := $(patsubst tests/mpi/%.c,$(BUILD)/mpi/tests/%,$(sort $(wildcard tests/mpi/test_*.c)))
MPI_BENCH := $(BUILD)/mpi/bench/scaling
MPI_CPPFLAGS = $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS     = $(shell mpicc --showme:link 2>/dev/null)
MPI_ALL   := $(if $(filter 1,$(MPI)),$(MPI_LIB) $(MPI_TOOLS) $(MPI_TESTS) $(MPI_BENCH))

# Objects outside the library (tools/cli.o) are kept, not deleted as intermediates.
.SECONDARY:

.PHONY: check-mpi deb check-deb installed-examples all check check-arm64 arm64-tests check-nosimd check-clang asan fuzz fuzz-build fuzz-seeds deps deps-test bench demo example install clean symbols
all: $(STATIC) $(SHARED) $(TOOLS) $(EXAMPLES) $(BENCHES) $(TESTS) $(MPI_ALL)

# Debian packages the build and the tests need; installed when missing (root).
DEB_BUILD := libopenblas-dev libstb-dev zlib1g-dev libcmocka-dev libcjson-dev libmodbus-dev libmicrohttpd-dev libsndfile1-dev libsamplerate0-dev libkissfft-dev pkg-config
DEB_TEST  := python3-torch python3-numpy python3-scipy dataset-fashion-mnist python3-zarr chromium
deps:
	@sh tools/install-deps.sh $(DEB_BUILD)
deps-test:
	@sh tools/install-deps.sh $(DEB_BUILD) $(DEB_TEST)

$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SHARED): $(LIB_OBJ) lib/aibox.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/aibox.map -Wl,--no-undefined \
	  $(LDFLAGS_ALL) -o $@ $(LIB_OBJ) $(LIBS)
	ln -sf $(SONAME) $(BUILD)/libaibox.so

$(TOOL_LIB): $(TOOL_SHARED:%.c=$(BUILD)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tools/%.o: CFLAGS_ALL += $(APP_CFLAGS)

# EXTRA_TOOL_LIBS / EXTRA_TEST_LIBS: what a program needs beyond $(LIBS) through
# the parts of $(TOOL_LIB) it calls (the archive brings in only those), set
# per program: tools/plc.c's libmodbus goes only where plc_* is called.
$(BUILD)/bin/aibox-infer $(BUILD)/mpi/bin/aibox-infer: EXTRA_TOOL_LIBS += -lmodbus
$(BUILD)/tests/tools/test_modbus: EXTRA_TEST_LIBS += -lmodbus

$(BUILD)/bin/%: tools/%.c $(wildcard tools/*.h) $(TOOL_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< $(TOOL_LIB) -o $@ $(STATIC) $(LIBS) $(EXTRA_TOOL_LIBS)

# aibox-serve: its own parts (tools/serve/*.c, not in $(TOOL_LIB): no other
# program needs libmicrohttpd) and the operator page's default folder.
SERVE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tools/serve/*.c)))
$(BUILD)/bin/aibox-serve: EXTRA_TOOL_LIBS += -lmodbus
$(BUILD)/bin/aibox-serve: tools/aibox-serve.c $(wildcard tools/*.h tools/serve/*.h) $(SERVE_OBJ) $(TOOL_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -DAIBOX_SERVE_WWW='"$(PREFIX)/share/aibox/www"' $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< \
	  $(SERVE_OBJ) $(TOOL_LIB) -o $@ $(STATIC) $(LIBS) $(EXTRA_TOOL_LIBS) -lmicrohttpd

$(MPI_LIB): lib/mpi/comm.c include/aibox/mpi.h Makefile
	@mkdir -p $(BUILD)/mpi
	$(CC) $(CPPFLAGS_ALL) $(MPI_CPPFLAGS) $(CFLAGS_ALL) -c $< -o $(BUILD)/mpi/comm.o
	@rm -f $@
	ar rcs $@ $(BUILD)/mpi/comm.o

$(BUILD)/mpi/bin/%: tools/%.c $(wildcard tools/*.h tools/mpi/*) $(TOOL_LIB) $(MPI_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -Itools $(MPI_CPPFLAGS) -DAIBOX_MPI $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< \
	  tools/mpi/mpi_tool.c $(TOOL_LIB) -o $@ $(MPI_LIB) $(STATIC) $(LIBS) $(EXTRA_TOOL_LIBS) $(MPI_LIBS)

$(BUILD)/mpi/tests/%: tests/mpi/%.c $(TEST_COMMON) $(TOOL_LIB) $(MPI_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -Itests -Itools $(MPI_CPPFLAGS) $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< $(TEST_COMMON) \
	  $(TOOL_LIB) -o $@ $(MPI_LIB) $(STATIC) -lcmocka $(LIBS) $(MPI_LIBS)

$(BUILD)/mpi/bench/%: bench/mpi/%.c bench/bench.h $(MPI_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(MPI_CPPFLAGS) $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< -o $@ $(MPI_LIB) $(STATIC) $(LIBS) $(MPI_LIBS)

$(BUILD)/examples/%: examples/%.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< -o $@ $(STATIC) $(LIBS)

$(BUILD)/bench/%: bench/%.c bench/bench.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< -o $@ $(STATIC) $(LIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_COMMON) $(TOOL_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -Itests -Itools $(CFLAGS_ALL) $(APP_CFLAGS) $(LDFLAGS_ALL) $< $(TEST_COMMON) $(TOOL_LIB) -o $@ $(STATIC) -lcmocka $(LIBS) $(EXTRA_TEST_LIBS)

# The examples built as a user builds them: against a staged install, with
# pkg-config, shared and static (tests/examples runs them).
STAGE := $(BUILD)/stage
installed-examples: all
	@rm -rf $(STAGE) $(BUILD)/installed
	@$(MAKE) --no-print-directory install DESTDIR=$(abspath $(STAGE)) PREFIX=/usr >/dev/null
	@sh examples/build-installed.sh $(abspath $(STAGE)) $(BUILD)/installed

# TensorFlow Lite 2.9's C library (npm's tfjs-tflite-node, ~95 MB, once per
# build dir): the reference the 8-bit kernels must equal byte for byte
# (tests/io/test_tflite_int8.c); without npm that comparison skips, saying so.
# REF_BUILD: where the reference runtimes live (the x86 build dir: they are
# x86 programs, run natively also by the emulated arm64 tests)
REF_BUILD = $(BUILD)
TFLITE_REF = sh tests/io/tflite_ref/fetch.sh $(abspath $(REF_BUILD))/tflite-ref || \
	echo "note: TFLite's reference library not fetched: test_tflite_int8 cannot compare" >&2
# LiteRT.js (npm @litertjs/core, 38 MB): the XNNPACK runtime, compared for the record.
LITERT_REF = sh tests/io/tflite_ref/fetch_litert.sh $(abspath $(REF_BUILD))/litert-ref || \
	echo "note: LiteRT.js not fetched: test_tflite_int8 does not report its differences" >&2

# playwright-core (npm, 3 MB, once per build dir) drives Debian's chromium in
# the operator page's browser test (tests/tools/test_serve.c); without npm
# that test skips, saying so.
PLAYWRIGHT_REF = sh tests/serve/fetch_playwright.sh $(abspath $(BUILD))/playwright || \
	echo "note: playwright-core not fetched: the browser test of aibox-serve's page skips" >&2
# Runs every test binary; AIBOX_DATA points real-data tests at ../shared/data.
check: deps-test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory installed-examples
	@sh tools/check-abi.sh $(SHARED) $(ABI)
	@AIBOX_TFLITE_C=$$($(TFLITE_REF)) AIBOX_LITERT=$$($(LITERT_REF)) AIBOX_PLAYWRIGHT=$$($(PLAYWRIGHT_REF)) \
	  AIBOX_DATA=$${AIBOX_DATA:-$(abspath ../shared/data)} sh tests/run.sh $(TESTS)

# The tests that run across processes (tests/mpi): the MPI build (MPI=1,
# above) in the same BUILD dir, then each test, which starts mpirun itself
# (2 and 4 ranks, oversubscribed on this 2-core machine).
DEB_MPI := libopenmpi-dev openmpi-bin
check-mpi:
	@sh tools/install-deps.sh $(DEB_BUILD) $(DEB_TEST) $(DEB_MPI)
	@$(MAKE) --no-print-directory MPI=1 all
	@AIBOX_DATA=$${AIBOX_DATA:-$(abspath ../shared/data)} AIBOX_MPI_BIN=$(abspath $(BUILD))/mpi/bin \
	  sh tests/run.sh $(MPI_TESTS)

# The unit tests of the aarch64 cross build, each binary under qemu-aarch64
# (two at a time: this is a 2-core machine), then tests/arm64/agree.sh: the
# arm64 tools under qemu give the x86 tools' answers on the same models and
# images. The tool suites run the arm64 tools through wrappers in
# $(BUILD)/emu-bin (AIBOX_TEST_BIN). Native `make check` only: the installed
# examples, the PyTorch comparisons (AIBOX_EMULATOR tells the tests;
# tests/common/check.h) and tests/tools/test_cli, whose trainings (a MobileNet
# fine-tune among them) take over 15 minutes emulated.
DEB_ARM64 := crossbuild-essential-arm64 qemu-user libopenblas-dev:arm64 libstb-dev:arm64 zlib1g-dev:arm64 \
  libcmocka-dev:arm64 libcjson-dev:arm64 libmodbus-dev:arm64 libmicrohttpd-dev:arm64 libsndfile1-dev:arm64 libsamplerate0-dev:arm64 \
  libkissfft-dev:arm64
X86_BUILD ?= build
ARM64_TESTS = $(filter-out $(BUILD)/tests/examples/% $(BUILD)/tests/tools/test_cli,$(TESTS))
check-arm64:
	@sh tools/install-deps.sh $(DEB_BUILD) $(DEB_TEST) $(DEB_ARM64)
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory ARCH=arm64 all
	@$(MAKE) --no-print-directory ARCH=arm64 arm64-tests

arm64-tests: REF_BUILD = $(X86_BUILD)
arm64-tests: $(TESTS) $(TOOLS)
	@rm -rf $(BUILD)/emu-bin && mkdir -p $(BUILD)/emu-bin
	@for t in $(TOOLS); do printf '#!/bin/sh\nexec %s %s "$$@"\n' "$(QEMU_ARM64)" "$(abspath $(BUILD))/bin/$${t##*/}" \
	  > $(BUILD)/emu-bin/$${t##*/} && chmod +x $(BUILD)/emu-bin/$${t##*/}; done
	@AIBOX_TFLITE_C=$$($(TFLITE_REF)) AIBOX_EMULATOR="$(QEMU_ARM64)" AIBOX_TEST_BIN=$(abspath $(BUILD))/emu-bin \
	  RUN_JOBS=2 sh tests/run.sh $(ARM64_TESTS)
	@sh tests/arm64/agree.sh $(X86_BUILD) $(BUILD) "$(QEMU_ARM64)"

# The whole of `make check` on the portable builds, each in its own BUILD
# dir (not part of `make check`: each costs about as much again):
#  check-nosimd  -DAIBOX_NO_SIMD: no hand-written SIMD, plain C everywhere
#                (lib/ops/simd.h); the x86 kernels are not compiled in
#  check-clang   CC=clang (examples/build-installed.sh too, through $CC)
check-nosimd:
	@$(MAKE) --no-print-directory check BUILD=build-nosimd EXTRA_CFLAGS="$(EXTRA_CFLAGS) -DAIBOX_NO_SIMD"

check-clang:
	@sh tools/install-deps.sh clang
	@$(MAKE) --no-print-directory check BUILD=build-clang CC=clang

# AddressSanitizer + UBSan build of the library and the tests, then run them.
asan: deps-test
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" build-asan/libaibox.a tests-asan

tests-asan: $(TESTS) $(TOOLS)
	@AIBOX_TFLITE_C=$$($(TFLITE_REF)) AIBOX_LITERT=$$($(LITERT_REF)) AIBOX_ASAN=1 AIBOX_DATA=$${AIBOX_DATA:-$(abspath ../shared/data)} \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 sh tests/run.sh $(TESTS)

# libFuzzer targets (tests/fuzz/fuzz_*.c) under ASan + UBSan, with the library
# sources compiled the same way into $(BUILD)/fuzz (not the normal objects);
# each runs FUZZ_SECONDS on a copy of its seed corpus, one after the other.
# stb_image (and the resize/write halves the library calls) is compiled into
# the binaries from the Debian headers, configured as Debian's libstb (no
# STBI_ macros set), so coverage and the sanitizers reach inside it; the
# fuzzers therefore link without -lstb. tests/fuzz/README.md has the details.
FUZZ_SECONDS ?= 600
# FUZZ_CPU=1: FUZZ_SECONDS counts the fuzzer's CPU time, not wall time
FUZZ_CPU     ?= 0
FUZZ_CC      ?= clang
# -O1 for the sanitizers' speed; clang does not honour winograd.c's vectorise
# hint at that level and says so (-Wpass-failed), which is no defect there
FUZZ_FLAGS   := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wno-pass-failed
FUZZ_NAMES   := image aibox tflite safetensors text
FUZZ_OBJ     := $(LIB_SRC:%.c=$(BUILD)/fuzz/%.o)
FUZZ_STB     := $(BUILD)/fuzz/stb_impl.o
FUZZ_BINS    := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_LIBS    := $(filter-out -lstb,$(LIBS))

$(BUILD)/fuzz/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS_ALL) -std=c11 $(WARN) -pthread $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

# third-party code: its warnings are not ours to fix (-w)
# shift exponents are recoverable there only so that tests/fuzz/ubsan.supp can
# name the one known upstream case (README report 6); any other still halts.
$(FUZZ_STB): tests/fuzz/stb_impl.c Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS_ALL) -std=c11 -w -pthread $(FUZZ_FLAGS) -fsanitize-recover=shift-exponent \
	  -fsanitize=fuzzer-no-link -c $< -o $@

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJ) $(FUZZ_STB)
	$(FUZZ_CC) $(CPPFLAGS_ALL) -std=c11 $(WARN) -pthread $(FUZZ_FLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJ) $(FUZZ_STB) -o $@ $(FUZZ_LIBS)

fuzz-build:
	@sh tools/install-deps.sh clang libclang-rt-14-dev
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz: fuzz-build
	@fail=0; for t in $(FUZZ_NAMES); do FUZZ_CPU=$(FUZZ_CPU) sh tests/fuzz/run.sh $(BUILD)/fuzz $$t $(FUZZ_SECONDS) || fail=1; done; exit $$fail

# Rewrites the committed .aibox, image and text seeds of tests/fuzz/corpus
# (tests/fuzz/make_seeds.c, built against the normal library; the TFLite and
# safetensors seeds come from tests/fuzz/make_corpus.py).
fuzz-seeds: $(BUILD)/fuzz-seeds/make_seeds
	$(BUILD)/fuzz-seeds/make_seeds tests/fuzz/corpus

$(BUILD)/fuzz-seeds/make_seeds: tests/fuzz/make_seeds.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) $(LDFLAGS_ALL) $< -o $@ $(STATIC) $(LIBS)

bench: deps
	@sh bench/run.sh $(BENCH)

# The README's first command: installs what is missing, builds, trains with
# aibox-train on Fashion-MNIST class folders and classifies with aibox-infer.
demo:
	@sh examples/demo.sh

# The library example: a C program training a CNN on Fashion-MNIST's IDX files.
example: deps
	@sh examples/run.sh

# Lists the dynamic symbols the shared library exports (all must be aibox_*).
symbols: $(SHARED)
	@nm -D --defined-only $(SHARED) | awk '$$2 ~ /[TDBR]/ {print $$3}' | sort

# LIBDIR: where the libraries and the .pc files go (the Debian packages use
# /usr/lib/<multiarch>); MANDIR: the pages of man/, by section, uncompressed.
LIBDIR  ?= $(PREFIX)/lib
MANDIR  ?= $(PREFIX)/share/man
# MPI=1: the tools that run across ranks replace the plain ones (alone, they
# behave the same; they need Open MPI's libraries), and libaibox_mpi.a.
install: $(STATIC) $(SHARED) $(TOOLS) $(MPI_ALL)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libaibox.so
	install -d $(DESTDIR)$(PREFIX)/include/aibox
	install -m 644 include/aibox.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/aibox/*.h $(DESTDIR)$(PREFIX)/include/aibox/
	$(if $(TOOLS),install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/)
	$(if $(filter 1,$(MPI)),install -m 755 $(MPI_TOOLS) $(DESTDIR)$(PREFIX)/bin/)
	$(if $(filter 1,$(MPI)),install -m 644 $(MPI_LIB) $(DESTDIR)$(LIBDIR)/)
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.3 $(DESTDIR)$(MANDIR)/man3/
	install -d $(DESTDIR)$(PREFIX)/share/aibox/www
	install -m 644 tools/serve/www/* $(DESTDIR)$(PREFIX)/share/aibox/www/
	for pc in aibox aibox-static; do sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	  -e 's|^libdir=.*|libdir=$(LIBDIR)|' lib/$$pc.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/$$pc.pc; done

# Debian packages libaibox$(ABI), libaibox-dev and aibox-tools for this
# machine's architecture or ARCH=arm64, into $(BUILD)/deb (tools/deb/build-deb.sh
# says how and why). check-deb installs the amd64 ones, checks them and
# removes them again (root); it is not part of `make check`.
DEB_ARCH := $(if $(filter arm64,$(ARCH)),arm64,$(shell dpkg --print-architecture 2>/dev/null))
DEB_TOOLS := dpkg-dev fakeroot lintian $(if $(filter arm64,$(ARCH)),crossbuild-essential-arm64 \
  libopenblas-dev:arm64 libstb-dev:arm64 zlib1g-dev:arm64 libcjson-dev:arm64 libmodbus-dev:arm64 libmicrohttpd-dev:arm64 \
  libsndfile1-dev:arm64 libsamplerate0-dev:arm64 libkissfft-dev:arm64,$(DEB_BUILD))
deb:
	@sh tools/install-deps.sh $(DEB_TOOLS)
	@$(MAKE) --no-print-directory $(STATIC) $(SHARED) $(TOOLS)
	@sh tools/deb/build-deb.sh "$(BUILD)" "$(DEB_ARCH)" "$(VERSION)" "$(ABI)" "$(MAKE) --no-print-directory $(if $(ARCH),ARCH=$(ARCH)) BUILD=$(BUILD)"

check-deb:
	@sh tools/install-deps.sh man-db pkg-config qemu-user
	@$(MAKE) --no-print-directory deb BUILD=$(BUILD)
	@$(MAKE) --no-print-directory deb ARCH=arm64 BUILD=$(BUILD)-arm64
	@sh tools/deb/check-deb.sh $(BUILD)/deb $(BUILD)-arm64/deb

clean:
	rm -rf build build-asan build-nosimd build-clang build-arm64

-include $(LIB_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)

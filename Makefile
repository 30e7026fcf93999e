# nhub: national hub message-exchange broker.
#
#   make            build everything into build/
#   make run        install what is missing, build, start a hub and two adapters
#   make check      install what is missing, build, run all tests (normal and
#                   ASan+UBSan builds); ends with "N passed, N failed"
#   make bench      durable-ingest figure (acked msgs/s, ACK latency)
#   make install PREFIX=/usr/local DESTDIR=
#
# Out-of-tree: objects and generated code go to $(B) (default build/). The
# sanitizer build lives in build/asan and is made by a recursive call.

B ?= build
SAN ?= 0
PREFIX ?= /usr/local
DESTDIR ?=

PKGS := libzmq libprotobuf-c lmdb openssl yaml-0.1
TEST_PKGS := cmocka

CC ?= cc
OPT ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Werror -pthread \
	-fno-strict-aliasing
ifeq ($(SAN),1)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

INCLUDES := -I$(B)/gen -Iproto -Ibroker -Iadapters -Itest/harness
CFLAGS_ALL = $(CFLAGS_BASE) $(INCLUDES) $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL = $(LDFLAGS_SAN) $(LDFLAGS) $(PKG_LIBS) -lm

# ---- sources ---------------------------------------------------------------
PROTOS := $(wildcard proto/*.proto)
GEN_C := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
GEN_H := $(GEN_C:.c=.h)

COMMON_SRC := $(wildcard proto/*.c)
BROKER_SRC := $(filter-out broker/main.c,$(wildcard broker/*.c))
LIBNHUB_SRC := $(wildcard adapters/lib/*.c)
ADAPTER_SRC := $(wildcard adapters/cli/*.c)
HARNESS_SRC := $(wildcard test/harness/*.c)
UNIT_SRC := $(wildcard test/unit/test_*.c)
INTEG_SRC := $(wildcard test/integration/test_*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
COMMON_OBJ := $(call obj,$(COMMON_SRC)) $(GEN_C:.c=.o)
BROKER_OBJ := $(call obj,$(BROKER_SRC))
LIBNHUB_OBJ := $(call obj,$(LIBNHUB_SRC))
ADAPTER_OBJ := $(call obj,$(ADAPTER_SRC))
HARNESS_OBJ := $(call obj,$(HARNESS_SRC))

LIB_COMMON := $(B)/lib/libnhubcommon.a
LIB_BROKER := $(B)/lib/libnhubbroker.a
LIB_NHUB := $(B)/lib/libnhub.a

BINS := $(B)/bin/nhubd $(B)/bin/nhub-adapter $(B)/bin/nhub-bench
UNIT_BINS := $(patsubst test/unit/%.c,$(B)/test/unit/%,$(UNIT_SRC))
INTEG_BINS := $(patsubst test/integration/%.c,$(B)/test/integration/%,$(INTEG_SRC))

.PHONY: all tests check check-normal check-asan run bench install deps clean format lint
.DELETE_ON_ERROR:
.SECONDARY:

all: $(BINS)

# ---- generated code --------------------------------------------------------
$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -Iproto $<

$(B)/gen/%.pb-c.o: $(B)/gen/%.pb-c.c
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# Every object may include generated headers.
$(B)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

$(LIB_COMMON): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIB_BROKER): $(BROKER_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIB_NHUB): $(LIBNHUB_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# ---- programs --------------------------------------------------------------
$(B)/bin/nhubd: $(call obj,broker/main.c) $(LIB_BROKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

$(B)/bin/nhub-adapter: $(ADAPTER_OBJ) $(LIB_NHUB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

$(B)/bin/nhub-bench: $(call obj,tools/nhub-bench/bench.c) $(call obj,test/harness/harness.c) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# ---- tests -----------------------------------------------------------------
$(B)/test/unit/%: $(call obj,test/unit/%.c) $(HARNESS_OBJ) $(LIB_BROKER) $(LIB_NHUB) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(TEST_LIBS)

$(B)/test/integration/%: $(call obj,test/integration/%.c) $(HARNESS_OBJ) $(LIB_NHUB) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(TEST_LIBS)

tests: $(BINS) $(UNIT_BINS) $(INTEG_BINS)

# ---- top-level commands ----------------------------------------------------
deps:
	@sh tools/deps.sh

check: deps
	@$(MAKE) --no-print-directory check-normal check-asan; \
	rc=$$?; sh test/summary.sh build/test-results; exit $$rc

check-normal:
	@rm -rf build/test-results/normal
	$(MAKE) --no-print-directory B=build tests
	@sh test/run.sh build build/test-results/normal

check-asan:
	@rm -rf build/test-results/asan
	$(MAKE) --no-print-directory B=build/asan SAN=1 OPT=-O1 tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	sh test/run.sh build/asan build/test-results/asan

run: deps
	@$(MAKE) --no-print-directory all
	@sh tools/run-demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	$(B)/bin/nhub-bench

install: all $(LIB_NHUB)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(LIB_NHUB) $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 adapters/nhub.h proto/nhub_err.h $(DESTDIR)$(PREFIX)/include/

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# cppcheck 2.10's uninitvar checks misread designated initialisers and
# locals whose address is taken before use (wire.c, session.c); the
# compiler's -Wall and the sanitizer builds cover that ground.
lint:
	cppcheck --quiet --std=c11 --enable=warning,portability --inline-suppr \
		--suppress=uninitvar --suppress=legacyUninitvar \
		--error-exitcode=1 -Iproto -Ibroker -Iadapters proto broker adapters tools

clean:
	rm -rf build

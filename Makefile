# nhub: national hub message-exchange broker.
#
#   make            install what is missing, build the programs into build/
#   make run        install what is missing, build, start a hub and six simulated
#                   provinces trading through it (tools/run-demo.sh)
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

PKGS := libzmq libprotobuf-c lmdb openssl yaml-0.1 libmicrohttpd jansson
TEST_PKGS := cmocka libcurl

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

INCLUDES := -I$(B)/gen -Iproto -Ibroker -Iadapters -Itest/harness -Itools/nhub-bench
CFLAGS_ALL = $(CFLAGS_BASE) $(INCLUDES) $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL = $(LDFLAGS_SAN) $(LDFLAGS) $(PKG_LIBS) -lm

# ---- sources ---------------------------------------------------------------
PROTOS := $(wildcard proto/*.proto)
# Business payload schemas, versioned packages (schemas/README.md); compiled
# into libnhubcommon, so the hub, libnhub and the tools know every type.
SCHEMA_PROTOS := $(sort $(shell find schemas -name '*.proto'))
SCHEMA_GEN_C := $(patsubst schemas/%.proto,$(B)/gen/%.pb-c.c,$(SCHEMA_PROTOS))
GEN_C := $(patsubst proto/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS)) $(SCHEMA_GEN_C)
GEN_H := $(GEN_C:.c=.h)
SCHEMA_REGISTRY := $(B)/gen/schemas.c
# The dashboard's files, embedded in nhubd (broker/web.h).
WEB_FILES := $(sort $(wildcard broker/web/*))
WEB_ASSETS := $(B)/gen/web_assets.c

# proto/pbjson.c (JSON <-> payload messages) needs jansson, so it is not
# common code: libnhubcommon's objects all go into libnhub.a, and a
# province's program must not need jansson for it. Programs that speak JSON
# link libnhubjson.a before libnhubcommon.a.
JSON_SRC := proto/pbjson.c
COMMON_SRC := $(filter-out $(JSON_SRC),$(wildcard proto/*.c))
BROKER_SRC := $(filter-out broker/main.c,$(wildcard broker/*.c))
LIBNHUB_SRC := $(wildcard adapters/lib/*.c)
ADAPTER_SRC := $(wildcard adapters/cli/*.c)
HARNESS_SRC := $(wildcard test/harness/*.c)
UNIT_SRC := $(wildcard test/unit/test_*.c)
INTEG_SRC := $(wildcard test/integration/test_*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
COMMON_OBJ := $(call obj,$(COMMON_SRC)) $(GEN_C:.c=.o) $(SCHEMA_REGISTRY:.c=.o)
BROKER_OBJ := $(call obj,$(BROKER_SRC)) $(WEB_ASSETS:.c=.o)
JSON_OBJ := $(call obj,$(JSON_SRC))
LIBNHUB_OBJ := $(call obj,$(LIBNHUB_SRC))
ADAPTER_OBJ := $(call obj,$(ADAPTER_SRC))
HARNESS_OBJ := $(call obj,$(HARNESS_SRC))

LIB_COMMON := $(B)/lib/libnhubcommon.a
LIB_BROKER := $(B)/lib/libnhubbroker.a
LIB_JSON := $(B)/lib/libnhubjson.a
LIB_NHUB := $(B)/lib/libnhub.a
LIB_NHUB_INT := $(B)/lib/libnhub-internal.a

BINS := $(B)/bin/nhubd $(B)/bin/nhub-adapter $(B)/bin/nhub-bench $(B)/bin/nhub-keygen \
	$(B)/bin/nhub-schema-check $(B)/bin/nhub-cases $(B)/bin/nhub-audit $(B)/bin/nhubctl $(B)/bin/nhub-sim
UNIT_BINS := $(patsubst test/unit/%.c,$(B)/test/unit/%,$(UNIT_SRC))
INTEG_BINS := $(patsubst test/integration/%.c,$(B)/test/integration/%,$(INTEG_SRC))

.PHONY: all programs tests check check-normal check-asan run bench install deps clean format lint
.DELETE_ON_ERROR:
.SECONDARY:

# Plain `make` installs what is missing first (tools/deps.sh; as root, or
# it names the apt-get command to run), then builds the programs.
all: deps
	@$(MAKE) --no-print-directory programs

programs: $(BINS) $(LIB_NHUB) $(LIB_JSON)

# ---- generated code --------------------------------------------------------
$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -Iproto $<

$(B)/gen/nhub/%.pb-c.c $(B)/gen/nhub/%.pb-c.h: schemas/nhub/%.proto
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -Ischemas $<

$(SCHEMA_REGISTRY): tools/gen-schemas.sh $(SCHEMA_GEN_C:.c=.h)
	sh tools/gen-schemas.sh $(B)/gen $(SCHEMA_GEN_C:.c=.h) >$@

$(B)/gen/%.pb-c.o: $(B)/gen/%.pb-c.c $(GEN_H)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(SCHEMA_REGISTRY:.c=.o): $(SCHEMA_REGISTRY)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(WEB_ASSETS): tools/embed-web.sh $(WEB_FILES)
	@mkdir -p $(B)/gen
	sh tools/embed-web.sh $@ $(WEB_FILES)

$(WEB_ASSETS:.c=.o): $(WEB_ASSETS) broker/web.h
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
$(LIB_JSON): $(JSON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
# libnhub.a, the library provinces link, is one object whose only global
# symbols are the nhub_ API of adapters/nhub.h: the common code inside it
# (log_, keys_, wire_, conf_, the protobuf-c descriptors) is made local, so
# it cannot collide with an application's own names. Our programs and tests
# link libnhub-internal.a (the same objects, unhidden) with libnhubcommon.a.
$(LIB_NHUB): $(LIBNHUB_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@) $(B)/obj/lib
	ld -r -o $(B)/obj/lib/libnhub.o $^
	objcopy --wildcard --keep-global-symbol='nhub_[a-z]*' --localize-symbol=nhub_clock_system \
		$(B)/obj/lib/libnhub.o
	rm -f $@ && ar rcs $@ $(B)/obj/lib/libnhub.o
$(LIB_NHUB_INT): $(LIBNHUB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# ---- programs --------------------------------------------------------------
$(B)/bin/nhubd: $(call obj,broker/main.c) $(LIB_BROKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

$(B)/bin/nhub-adapter: $(ADAPTER_OBJ) $(LIB_NHUB_INT) $(LIB_JSON) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# The bench links the peers' client libraries when they are installed
# (tools/bench-deps.sh); without them it reports those peers as skipped.
BENCH_PEER_PKGS := $(shell for p in librabbitmq libnats; do pkg-config --exists $$p && echo $$p; done)
BENCH_PEER_LIBS := $(if $(BENCH_PEER_PKGS),$(shell pkg-config --libs $(BENCH_PEER_PKGS)))
BENCH_SRC := $(wildcard tools/nhub-bench/*.c)
# Which peers the bench objects were built with (they test __has_include):
# the stamp changes when that set does, and the objects are rebuilt.
BENCH_PEERS_STAMP := $(B)/obj/tools/nhub-bench/peers.stamp
BENCH_PEERS_SET := $(shell mkdir -p $(dir $(BENCH_PEERS_STAMP)); \
	[ "$$(cat $(BENCH_PEERS_STAMP) 2>/dev/null)" = "peers: $(BENCH_PEER_PKGS)" ] || \
	echo "peers: $(BENCH_PEER_PKGS)" >$(BENCH_PEERS_STAMP))
$(call obj,$(BENCH_SRC)): $(BENCH_PEERS_STAMP)
# The adapter section drives nhub-adapter run's HTTP API with libcurl.
BENCH_CURL_CFLAGS = $(shell pkg-config --cflags libcurl 2>/dev/null)
BENCH_CURL_LIBS = $(shell pkg-config --libs libcurl 2>/dev/null)
$(call obj,tools/nhub-bench/adapter.c): INCLUDES += $(BENCH_CURL_CFLAGS)

$(B)/bin/nhub-bench: $(call obj,$(BENCH_SRC)) $(call obj,test/harness/harness.c test/harness/samples.c) $(LIB_BROKER) $(LIB_NHUB_INT) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(BENCH_PEER_LIBS) $(BENCH_CURL_LIBS)

# nhub-keygen: the key files of a region or of the hub (tools/nhub-keygen/README.md).
$(B)/bin/nhub-keygen: $(call obj,tools/nhub-keygen/main.c) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# nhub-sim: provinces trading through a hub (tools/nhub-sim/README.md). It
# reads the hub's configuration and catalogue (cfg, catalog) and builds its
# payloads from the valid samples of test/harness/samples.c.
SIM_SRC := $(wildcard tools/nhub-sim/*.c)
$(B)/bin/nhub-sim: $(call obj,$(SIM_SRC) test/harness/samples.c) $(LIB_BROKER) $(LIB_NHUB_INT) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# nhub-cases: the hub's cases, read beside the running hub (read-only).
$(B)/bin/nhub-cases: $(call obj,tools/nhub-cases/main.c) $(LIB_BROKER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# nhub-audit: the journal and its transparency log verified, proofs made and
# checked, read beside the running hub (read-only); libnhub for replay --into.
$(B)/bin/nhub-audit: $(call obj,$(wildcard tools/nhub-audit/*.c)) $(LIB_BROKER) $(LIB_NHUB_INT) \
	$(LIB_JSON) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# nhubctl: the operators' command line for the hub's HTTP API: libcurl and
# jansson, and of ours only libnhubcommon (log_time).
CTL_PKGS := libcurl jansson
CTL_CFLAGS = $(shell pkg-config --cflags $(CTL_PKGS) 2>/dev/null)
CTL_LIBS = $(shell pkg-config --libs $(CTL_PKGS) 2>/dev/null)
CTL_SRC := $(wildcard tools/nhubctl/*.c)
$(call obj,$(CTL_SRC)): INCLUDES += $(CTL_CFLAGS)

$(B)/bin/nhubctl: $(call obj,$(CTL_SRC)) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(CTL_LIBS)

# ---- tests -----------------------------------------------------------------
$(B)/test/unit/%: $(call obj,test/unit/%.c) $(HARNESS_OBJ) $(LIB_BROKER) $(LIB_NHUB_INT) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(TEST_LIBS)

$(B)/test/integration/%: $(call obj,test/integration/%.c) $(HARNESS_OBJ) $(LIB_BROKER) $(LIB_NHUB_INT) $(LIB_JSON) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(TEST_LIBS)

# test_adapterd writes the daemon's record (adapters/cli/track.c) as an earlier run left it.
$(B)/test/integration/test_adapterd: $(call obj,adapters/cli/track.c)

# Linked as a province's program links the library: libnhub.a and nothing else of ours.
$(B)/test/unit/test_public_lib: $(call obj,test/unit/test_public_lib.c) $(LIB_NHUB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(TEST_LIBS)

# The JSON converter's test: libnhubjson.a, and test-only types of every
# field kind (test/data/pbjson/*.proto, generated into $(B)/gen/pbjson-test/).
# malloc is wrapped so the test can make allocations fail (see its top).
PBJSON_TEST_PROTOS := $(wildcard test/data/pbjson/*.proto)
PBJSON_TEST_GEN_C := $(patsubst test/data/pbjson/%.proto,$(B)/gen/pbjson-test/%.pb-c.c,\
	$(PBJSON_TEST_PROTOS))
PBJSON_TEST_GEN_H := $(PBJSON_TEST_GEN_C:.c=.h)

$(B)/gen/pbjson-test/%.pb-c.c $(B)/gen/pbjson-test/%.pb-c.h: test/data/pbjson/%.proto
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(B)/gen/pbjson-test -Itest/data/pbjson $<

$(call obj,test/unit/test_pbjson.c): INCLUDES += -I$(B)/gen/pbjson-test
$(call obj,test/unit/test_pbjson.c): $(PBJSON_TEST_GEN_H)

$(B)/test/unit/test_pbjson: $(call obj,test/unit/test_pbjson.c) $(PBJSON_TEST_GEN_C:.c=.o) \
	$(LIB_JSON) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL) $(TEST_LIBS) -Wl,--wrap=malloc

# The nhubctl test runs the program against a real hub.
$(B)/test/integration/test_nhubctl: | $(B)/bin/nhubctl $(B)/bin/nhubd
# The simulator's test runs it against a real hub; the `make run` test runs
# tools/run-demo.sh, which runs the hub, the simulator and nhub-keygen.
$(B)/test/integration/test_audit_tool: | $(B)/bin/nhub-audit $(B)/bin/nhubd
$(B)/test/integration/test_receipt: | $(B)/bin/nhub-adapter $(B)/bin/nhub-audit $(B)/bin/nhubd
$(B)/test/integration/test_replay: | $(B)/bin/nhub-audit $(B)/bin/nhubd
$(B)/test/integration/test_archive: | $(B)/bin/nhub-audit $(B)/bin/nhubd
$(B)/test/integration/test_sim: | $(B)/bin/nhub-sim $(B)/bin/nhubd
$(B)/test/integration/test_run_demo: | $(B)/bin/nhub-sim $(B)/bin/nhubd $(B)/bin/nhub-keygen

tests: $(BINS) $(UNIT_BINS) $(INTEG_BINS)

# ---- top-level commands ----------------------------------------------------
deps:
	@sh tools/deps.sh

check: deps
	@$(MAKE) --no-print-directory check-normal check-asan soak-check fuzz-check schema-compat-check; \
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
	@$(MAKE) --no-print-directory programs
	@sh tools/run-demo.sh

bench: deps
	@sh tools/bench-deps.sh
	@$(MAKE) --no-print-directory programs
	NHUB_BIN=$(B)/bin $(B)/bin/nhub-bench $(BENCH_ARGS)

install: deps
	@$(MAKE) --no-print-directory programs
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

# ---- fuzzing (libFuzzer, clang, ASan + UBSan) -------------------------------
# make fuzz [FUZZ_SECONDS=60]  build the targets of test/fuzz/ and run each for
#                              FUZZ_SECONDS on a copy of its seed corpus (in
#                              $(B)/fuzz/work/); a crash fails the run and is
#                              moved to test/fuzz/crashes/<target>/
# make fuzz-regress            run every input of test/fuzz/regress/<target>/ once
# make fuzz-check              fuzz-regress, then each target for 5 s (for make check;
#                              counts go to build/test-results/fuzz/)
# make fuzz-seeds              regenerate the committed corpora test/fuzz/corpus/
# Our sources and the generated code are compiled with coverage
# (fuzzer-no-link) so the fuzzer is guided through them; system libraries
# (protobuf-c, libyaml) are not instrumented.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RESULTS ?=
FUZZ_B := $(B)/fuzz
FUZZ_TARGETS := fuzz_frames fuzz_envelope fuzz_config fuzz_catalog fuzz_payload fuzz_pbjson
FUZZ_MAXLEN_fuzz_frames := 8192
FUZZ_MAXLEN_fuzz_envelope := 4096
FUZZ_MAXLEN_fuzz_config := 16384
FUZZ_MAXLEN_fuzz_catalog := 16384
FUZZ_MAXLEN_fuzz_payload := 4096
FUZZ_MAXLEN_fuzz_pbjson := 8192
FUZZ_BINS := $(addprefix $(FUZZ_B)/,$(FUZZ_TARGETS))
# See the top of test/fuzz/fuzz_config.c and fuzz_catalog.c.
FUZZ_LDFLAGS_fuzz_config := -Wl,--wrap=calloc -Wl,--wrap=free
FUZZ_LDFLAGS_fuzz_catalog := -Wl,--wrap=calloc -Wl,--wrap=free
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -pthread \
	-fno-strict-aliasing -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-fsanitize=fuzzer-no-link,address,undefined $(INCLUDES) $(PKG_CFLAGS)
FUZZ_OBJ := $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(COMMON_SRC) $(JSON_SRC) broker/cfg.c broker/catalog.c \
	broker/translate.c $(GEN_C) $(SCHEMA_REGISTRY))

# $(1) seconds, $(2) results directory (may be empty)
FUZZ_RUN = rc=0; $(foreach t,$(FUZZ_TARGETS),sh test/fuzz/run.sh $(t) $(FUZZ_B)/$(t) $(1) \
	$(FUZZ_MAXLEN_$(t)) $(FUZZ_B)/work $(2) || rc=1;) exit $$rc
FUZZ_REGRESS = rc=0; $(foreach t,$(FUZZ_TARGETS),sh test/fuzz/regress.sh $(t) $(FUZZ_B)/$(t) \
	$(1) || rc=1;) exit $$rc

.PHONY: fuzz fuzz-build fuzz-check fuzz-regress fuzz-seeds

$(FUZZ_B)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(FUZZ_B)/obj -name '*.d' 2>/dev/null)

$(FUZZ_B)/fuzz_%: $(FUZZ_B)/obj/test/fuzz/fuzz_%.o $(FUZZ_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(FUZZ_LDFLAGS_$(notdir $@)) $^ -o $@ \
		$(PKG_LIBS) -lm

fuzz-build: $(FUZZ_BINS)

fuzz: deps fuzz-build
	@$(call FUZZ_RUN,$(FUZZ_SECONDS),$(FUZZ_RESULTS))

fuzz-regress: deps fuzz-build
	@$(call FUZZ_REGRESS,$(FUZZ_RESULTS))

fuzz-check: deps fuzz-build
	@rm -rf build/test-results/fuzz; rc=0; \
	$(MAKE) --no-print-directory fuzz-regress FUZZ_RESULTS=build/test-results/fuzz || rc=1; \
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=5 FUZZ_RESULTS=build/test-results/fuzz || rc=1; \
	exit $$rc

$(FUZZ_B)/mkseeds: $(call obj,test/fuzz/mkseeds.c test/harness/samples.c) $(LIB_JSON) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

fuzz-seeds: $(FUZZ_B)/mkseeds
	sh test/fuzz/seeds.sh $(FUZZ_B)/mkseeds
# ---- end of fuzzing ----------------------------------------------------------

# ---- crash soak -------------------------------------------------------------
# make soak [SOAK_ARGS="--cycles N --seconds S --senders K --seed X"]
#                    nhubd killed (SIGKILL) and restarted under load for 100
#                    cycles (bounded by 300 s), adapters killed in some rounds;
#                    fails if a message ACKed to a sender was lost, duplicated
#                    to the receiving application or handed out of order
# make soak-check    the short version (--short: 10 cycles, 45 s) for make
#                    check; its count goes to build/test-results/soak/
SOAK_ARGS ?=

.PHONY: soak soak-check

$(B)/bin/nhub-soak: $(call obj,tools/nhub-soak/soak.c) $(call obj,test/harness/harness.c) $(LIB_BROKER) $(LIB_NHUB_INT) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

soak: deps
	@$(MAKE) --no-print-directory $(B)/bin/nhubd $(B)/bin/nhub-soak
	NHUB_BIN=$(B)/bin $(B)/bin/nhub-soak $(SOAK_ARGS)

soak-check: deps
	@$(MAKE) --no-print-directory $(B)/bin/nhubd $(B)/bin/nhub-soak
	@rm -rf build/test-results/soak; mkdir -p build/test-results/soak; \
	if NHUB_BIN=$(B)/bin $(B)/bin/nhub-soak --short $(SOAK_ARGS); \
	then echo "1 0" >build/test-results/soak/nhub-soak.count; \
	else echo "0 1" >build/test-results/soak/nhub-soak.count; exit 1; fi
# ---- end of crash soak -------------------------------------------------------

# ---- schema compatibility ---------------------------------------------------
# nhub-schema-check OLD NEW names the breaking changes between two descriptor
# sets (tools/nhub-schema-check/README.md). It decodes them with
# descriptor_subset.proto, a subset of google/protobuf/descriptor.proto kept
# beside it, generated into $(B)/gen/ like the wire protos.
#
# make schema-check SCHEMA_PAIRS="OLD.pb:NEW.pb ..."
#                    run the checker on each pair; fails if any pair has a
#                    breaking change or a set cannot be read. Empty (the
#                    default) checks nothing; the business schemas' pairs go
#                    here once their descriptor sets are built.
SCHEMA_PAIRS ?=
SCHEMA_CHECK_DIR := tools/nhub-schema-check
SCHEMA_CHECK_GEN_C := $(B)/gen/descriptor_subset.pb-c.c
SCHEMA_CHECK_GEN_H := $(SCHEMA_CHECK_GEN_C:.c=.h)
SCHEMA_CHECK_OBJ := $(call obj,$(SCHEMA_CHECK_DIR)/compare.c) $(SCHEMA_CHECK_GEN_C:.c=.o)
SCHEMA_CHECK_FIXTURE_PROTOS := $(wildcard test/data/schema-check/*.proto)
SCHEMA_CHECK_FIXTURES := $(patsubst test/data/schema-check/%.proto,$(B)/test/data/schema-check/%.pb,\
	$(SCHEMA_CHECK_FIXTURE_PROTOS))

.PHONY: schema-check schema-compat-check

# For make check: each business schema version against its predecessor
# (tools/schema-compat.sh; counts to build/test-results/schema/).
schema-compat-check:
	@$(MAKE) --no-print-directory B=build build/bin/nhub-schema-check
	@sh tools/schema-compat.sh build/bin build/test-results/schema

$(SCHEMA_CHECK_GEN_C) $(SCHEMA_CHECK_GEN_H) &: $(SCHEMA_CHECK_DIR)/descriptor_subset.proto
	@mkdir -p $(B)/gen
	protoc-c --c_out=$(B)/gen -I$(SCHEMA_CHECK_DIR) $<

$(call obj,$(SCHEMA_CHECK_DIR)/compare.c): $(SCHEMA_CHECK_GEN_H)

$(B)/bin/nhub-schema-check: $(call obj,$(SCHEMA_CHECK_DIR)/main.c) $(SCHEMA_CHECK_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LDLIBS_ALL)

# The unit test calls compare.h and runs the program on the fixtures: one
# descriptor set per test/data/schema-check/*.proto. A set holds the files
# its .proto imports, so each one depends on all the fixture files.
$(call obj,test/unit/test_schema_check.c): INCLUDES += -I$(SCHEMA_CHECK_DIR)
$(B)/test/unit/test_schema_check: $(SCHEMA_CHECK_OBJ) | $(SCHEMA_CHECK_FIXTURES) \
	$(B)/bin/nhub-schema-check

$(B)/test/data/schema-check/%.pb: test/data/schema-check/%.proto $(SCHEMA_CHECK_FIXTURE_PROTOS)
	@mkdir -p $(dir $@)
	protoc-c --descriptor_set_out=$@ --include_imports -Itest/data/schema-check $<

schema-check: deps
	@$(MAKE) --no-print-directory $(B)/bin/nhub-schema-check
	@[ -n "$(strip $(SCHEMA_PAIRS))" ] || echo "schema-check: SCHEMA_PAIRS is empty; nothing to check"
	@rc=0; for p in $(SCHEMA_PAIRS); do \
		case "$$p" in ?*:?*) ;; *) echo "schema-check: $$p: expected OLD.pb:NEW.pb" >&2; \
			rc=1; continue ;; esac; \
		$(B)/bin/nhub-schema-check "$${p%%:*}" "$${p#*:}" || rc=1; \
	done; exit $$rc
# ---- end of schema compatibility ---------------------------------------------

# Sluice: one non-recursive Makefile.
#   make            build ./sluice (-Wall -Wextra -Werror)
#   make test       unit (cmocka), conformance, integration (prove) and crash tests
#   make asan       the same tests on an ASan+UBSan build (in build-asan/)
#   make run        install what is missing, build, run the demo project
#   make deps       apt-get install the packages in deps/debian.txt
#   make fuzz       build the libFuzzer targets (clang)
#   make bench      run the benchmarks in bench/
# V=1 shows the commands.

BUILD   ?= build
CC      ?= cc
PKGS    := libfyaml jansson libcurl libpcre2-8 libcrypto sqlite3 libmicrohttpd libpq hiredis libnats rdkafka
OPT     ?= -O2 -g
CFLAGS  ?= $(OPT)
# -Wno-format-truncation: messages are cut on purpose at their named maximum.
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wno-format-truncation -fno-strict-aliasing \
           -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# clang does not know gcc's -Wno-format-truncation; tell it not to mind.
ifneq ($(findstring clang,$(CC)),)
CFLAGS  += -Wno-unknown-warning-option
endif
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -llinear -ljq -lonig -lpthread -lm
SAN     :=

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Every module is a folder under src/; its .c files are found, not listed,
# so a new file needs no Makefile change. cli/ holds main().
LIB_SRC  := $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
# Documents compiled into the binary (tools/embed.sh): FILE -> $(BUILD)/gen/NAME.o
EMBED_OBJ := $(BUILD)/gen/openapi_json.o
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(EMBED_OBJ)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SUP_SRC  := $(sort $(wildcard tests/support/*.c))
SUP_BIN  := $(SUP_SRC:tests/support/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIB      := $(BUILD)/libsluice.a
SLUICE   := $(if $(filter build,$(BUILD)),sluice,$(BUILD)/sluice)

# The demo's local classifier is trained from the labelled set in the repo
# at build time (about 2 s, deterministic) instead of keeping 4 MB of
# weights in git.
EXAMPLE_MODEL := examples/support-triage/models/triage.json

all: $(SLUICE) $(UNIT_BIN) $(SUP_BIN) $(EXAMPLE_MODEL)

$(EXAMPLE_MODEL): examples/support-triage/models/triage.train.jsonl | $(SLUICE)
	@echo "  TRAIN   $@"
	$(Q)./$(SLUICE) model train examples/support-triage triage >/dev/null

$(SLUICE): $(CLI_OBJ) $(LIB)
	@echo "  LINK    $@"
	$(Q)$(CC) $(CFLAGS) $(SAN) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(LIB): $(LIB_OBJ)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $(LIB_OBJ)

$(BUILD)/gen/openapi_json.c: src/server/openapi.json tools/embed.sh
	@mkdir -p $(dir $@)
	@echo "  EMBED   $<"
	$(Q)sh tools/embed.sh sl_openapi_json $< >$@.tmp && mv $@.tmp $@

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(SAN) -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) $(SAN) -MMD -MP -c -o $@ $<

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	$(Q)$(CC) $(CFLAGS) $(SAN) $(shell pkg-config --cflags cmocka) -MMD -MP -o $@ $< $(LIB) $(LDLIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/tests/%: tests/support/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  SUPPORT $@"
	$(Q)$(CC) $(CFLAGS) $(SAN) -MMD -MP -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	@echo "  BENCH   $@"
	$(Q)$(CC) $(CFLAGS) $(SAN) -MMD -MP -o $@ $< $(LIB) $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(UNIT_BIN:=.d) $(SUP_BIN:=.d)

# ---- tests ------------------------------------------------------------
# tests/run.sh runs every tier and closes with prove's "Result:" line and a
# plain "N passed, N failed" line.
test: all
	$(Q)SLUICE_BIN=$(abspath $(SLUICE)) SLUICE_BUILD=$(abspath $(BUILD)) tests/run.sh

unit: all
	$(Q)SLUICE_BIN=$(abspath $(SLUICE)) SLUICE_BUILD=$(abspath $(BUILD)) tests/run.sh unit

asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

fuzz:
	$(Q)$(MAKE) --no-print-directory -f fuzz/fuzz.mk

bench: all $(BENCH_BIN)
	$(Q)SLUICE_BIN=$(abspath $(SLUICE)) SLUICE_BUILD=$(abspath $(BUILD)) bench/run.sh

# ---- set-up -----------------------------------------------------------
deps:
	$(Q)tools/deps.sh deps/debian.txt

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/demo.sh

clean:
	rm -rf build build-asan build-fuzz sluice $(EXAMPLE_MODEL) $(EXAMPLE_MODEL:.json=.liblinear)

.PHONY: all test unit asan fuzz bench deps run clean

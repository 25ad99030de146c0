# make fuzz: builds every fuzz/fuzz_*.c as a libFuzzer target (clang,
# ASan+UBSan) against a libsluice built for fuzzing, then runs each for
# FUZZ_SECONDS (default 20) from its seed corpus in fuzz/corpus/NAME/.
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 20
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC     := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/fuzz/%)
PKGS         := libfyaml jansson libcurl libpcre2-8 libcrypto sqlite3 libmicrohttpd libpq
LIBS         := $(shell pkg-config --libs $(PKGS)) -llinear -ljq -lonig -lpthread -lm

all: run

lib:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/libsluice.a

$(FUZZ_BUILD)/fuzz/%: fuzz/%.c lib
	@mkdir -p $(dir $@)
	@echo "  FUZZ    $@"
	@clang -O1 -g -std=gnu11 -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS)) $(FUZZ_SAN) \
	    -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libsluice.a $(LIBS)

run: $(FUZZ_BIN)
	@for t in $(FUZZ_BIN); do \
	    name=$$(basename $$t); corpus=fuzz/corpus/$${name#fuzz_}; mkdir -p $$corpus; \
	    work=$(FUZZ_BUILD)/corpus/$${name#fuzz_}; mkdir -p $$work; \
	    echo "== $$name ($(FUZZ_SECONDS) s)"; \
	    $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $$work $$corpus 2>&1 | tail -2 || exit 1; \
	done

.PHONY: all lib run

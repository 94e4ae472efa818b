# prism: plain Makefile (see ../shared/STYLE.md section 9).
#   make            debug build of build/prism (-Werror)
#   make release    optimised, hardened build in build/release/prism
#   make test       unit tests (cmocka)
#   make san        the whole build and unit tests under ASan+UBSan (build/san/)
#   make san-integration  the integration tests against that build of prism
#   make fuzz       build every fuzz target (clang-14 libFuzzer) and run each briefly
#   make check      install what is missing, build, run every test
#   make run        install what is missing, build, start prism on its embedded defaults
#   make bench      the side-by-side benchmark (bench/run.sh)

CC       ?= cc
PKGS     := jansson sqlite3 libmicrohttpd openssl
WERROR   ?= 1 # packagers with a newer compiler may pass WERROR=0

WARN_CFLAGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2 \
               -Wimplicit-fallthrough -Wundef -Wvla
SAN_CFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
HARDEN_CFLAGS := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Isrc $(WARN_CFLAGS) $(PKG_CFLAGS) -MMD -MP
ifeq ($(strip $(WERROR)),1)
BASE_CFLAGS += -Werror
endif
LIBS := $(PKG_LIBS) -lpthread -lm

# Variants: debug (default), release, san.
VARIANT ?= debug
ifeq ($(VARIANT),release)
  BUILD := build/release
  VCFLAGS := -O2 -g $(HARDEN_CFLAGS)
  VLDFLAGS := $(HARDEN_LDFLAGS)
else ifeq ($(VARIANT),san)
  BUILD := build/san
  VCFLAGS := -O1 -g $(SAN_CFLAGS)
  VLDFLAGS := $(SAN_CFLAGS)
else
  BUILD := build
  VCFLAGS := -O1 -g
  VLDFLAGS :=
endif

CFLAGS_ALL := $(BASE_CFLAGS) $(VCFLAGS) $(CFLAGS)

SRC      := $(shell find src -name '*.c' | sort)
LIB_SRC  := $(filter-out src/main.c,$(SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/src/main.o
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 20

.PHONY: all release san test unit-test san-test san-integration fuzz fuzz-build check run bench deps \
        integration format check-format lint clean

all: $(BUILD)/prism

$(BUILD)/prism: $(MAIN_OBJ) $(BUILD)/libprism.a
	$(CC) $(VLDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/libprism.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libprism.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(BUILD)/libprism.a $(LIBS) -lcmocka $(VLDFLAGS)

release:
	$(MAKE) VARIANT=release all

# Runs every binary even when one fails, then fails if any did.
unit-test: $(UNIT_BIN)
	@failed=""; for t in $(UNIT_BIN); do echo "== $$t"; $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "unit tests failed:$$failed"; exit 1; fi

test: unit-test

san:
	$(MAKE) VARIANT=san all unit-test

san-test: san

# The integration tests against the ASan+UBSan build of prism: a memory error or
# undefined behaviour ends prism, and each prism is stopped with SIGTERM after its test
# so that a leak fails it too (tests/integration/conftest.py, PRISM_SANITIZED).
san-integration:
	$(MAKE) VARIANT=san all
	PRISM_BIN=$(CURDIR)/build/san/prism PRISM_SANITIZED=1 tests/integration/run.sh

# libFuzzer targets: the library is rebuilt with clang and fuzzer instrumentation.
FUZZ_CC := clang-14
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz/%)

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -g -O1 \
	    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -c -o $@ $<

build/fuzz/%: fuzz/%.c $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(FUZZ_FLAGS) -o $@ $< \
	    $(FUZZ_LIB_OBJ) $(LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	@set -e; for f in $(FUZZ_BIN); do \
	    name=$$(basename $$f); corpus=fuzz/corpus/$${name#fuzz_}; \
	    mkdir -p build/fuzz/work/$$name; \
	    echo "== $$name ($(FUZZ_SECONDS) s)"; \
	    dict=""; [ -f fuzz/$$name.dict ] && dict=-dict=fuzz/$$name.dict; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 $$dict \
	        -print_final_stats=0 build/fuzz/work/$$name $$corpus 2>build/fuzz/work/$$name.log \
	        || { tail -50 build/fuzz/work/$$name.log; exit 1; }; \
	    grep -E '^Done [0-9]+ runs' build/fuzz/work/$$name.log | tail -1; \
	done

integration: all
	tests/integration/run.sh

deps:
	scripts/install-deps.sh all

check:
	scripts/install-deps.sh test
	$(MAKE) all
	$(MAKE) unit-test
	$(MAKE) san
	$(MAKE) fuzz
	tests/integration/run.sh
	$(MAKE) san-integration

run:
	scripts/install-deps.sh build
	$(MAKE) all
	scripts/run.sh

bench:
	scripts/install-deps.sh bench
	$(MAKE) release
	bench/run.sh

format:
	clang-format -i $$(find src tests/unit fuzz bench -name '*.[ch]')

check-format:
	clang-format --dry-run --Werror $$(find src tests/unit fuzz bench -name '*.[ch]')

# Banned calls, checked as plain text like curl's checksrc.pl.
lint:
	@! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi)\s*\(' \
	    $$(find src -name '*.[ch]') || { echo "lint: banned call"; exit 1; }

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

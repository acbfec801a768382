# portico - GNU Makefile. `make deps` installs every Debian package needed,
# `make` builds build/portico, `make test` runs the unit and end-to-end tests,
# `make asan` builds build-asan/portico (ASan + UBSan), `make fuzz` runs the fuzzers.

BUILD   ?= build
CC      ?= cc
PKGS    := yaml-0.1 libpcre2-8 libssl libcrypto libnghttp2 zlib libbrotlienc libbrotlidec libzstd
OPT     ?= -O2 -g
CFLAGS  ?=
CFLAGS  += -std=gnu11 $(OPT) -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Wstrict-prototypes -Wmissing-prototypes -fno-strict-aliasing \
           -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(EXTRA_CFLAGS)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
PYTHON  ?= /usr/bin/python3

SRCS     := $(sort $(shell find src -name '*.c'))
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
OBJS     := $(SRCS:%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(shell find tests/unit -name '*.c' 2>/dev/null))
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)

# Debian packages: build, libraries, test clients and the benchmark peers.
DEB_PKGS := build-essential pkg-config clang libclang-rt-14-dev \
            libyaml-dev libpcre2-dev libssl-dev libnghttp2-dev zlib1g-dev \
            libcriterion-dev python3 python3-pytest curl nghttp2-client wrk \
            openssl procps iproute2 nginx haproxy libnghttp2-dev sslscan \
            python3-h2 python3-websockets libbrotli-dev libzstd-dev brotli zstd \
            chromium

.PHONY: all deps test unit e2e asan asan-e2e fuzz fuzz-build fuzz-regress clean check demo ci

all: $(BUILD)/portico

$(BUILD)/portico: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/unit-tests: $(UNIT_OBJS) $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

-include $(OBJS:.o=.d) $(UNIT_OBJS:.o=.d)

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all installed"; fi

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests --jobs 2

e2e: $(BUILD)/portico
	PORTICO_BIN=$(abspath $(BUILD)/portico) $(PYTHON) -m pytest -q tests/e2e

test: unit e2e fuzz-regress

# Sanitizer build: same sources, separate tree.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" all

asan-e2e: asan
	PORTICO_BIN=$(abspath build-asan/portico) PORTICO_ASAN=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(PYTHON) -m pytest -q tests/e2e

# Fuzzing (clang + libFuzzer). FUZZ_SECONDS bounds each target.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(basename $(notdir $(wildcard fuzz/fuzz_*.c)))
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined
fuzz-build: $(FUZZ_TARGETS:%=build-fuzz/%)
build-fuzz/%: fuzz/%.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(filter src/core/% src/http/%,$(LIB_SRCS)) $(LDLIBS)
# The HTTP/2 session harness links the real h2.c (engine calls are stubbed in it).
build-fuzz/fuzz_h2: fuzz/fuzz_h2.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(filter src/core/% src/http/% src/proxy/h2.c src/proxy/relay.c,$(LIB_SRCS)) $(LDLIBS)
# The config loader also needs conf/ and the server state it creates.
build-fuzz/fuzz_conf: fuzz/fuzz_conf.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(filter src/core/% src/http/% src/conf/% src/lb/server.c,$(LIB_SRCS)) $(LDLIBS)
# The admin API's JSON parser lives in conf/ too.
build-fuzz/fuzz_json: fuzz/fuzz_json.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(filter src/core/% src/http/% src/conf/% src/lb/server.c,$(LIB_SRCS)) $(LDLIBS)
# Cache and compression header parsing: the policy (http/) and negotiation (filters/).
build-fuzz/fuzz_cache_headers: fuzz/fuzz_cache_headers.c $(LIB_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(filter src/core/% src/http/% src/filters/negotiate.c src/filters/compress.c,$(LIB_SRCS)) $(LDLIBS)
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t build-fuzz/corpus-$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS)s"; \
	  dict=fuzz/dict/http.dict; [ $$t = fuzz_conf -o $$t = fuzz_json ] && dict=fuzz/dict/conf.dict; \
	  build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -dict=$$dict \
	    -artifact_prefix=fuzz/ build-fuzz/corpus-$$t fuzz/corpus/$$t || exit 1; \
	done
# Replays the seed corpora and every minimised crasher kept in fuzz/regression/.
fuzz-regress: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  files=$$(ls fuzz/corpus/$$t/* fuzz/regression/$$t/* 2>/dev/null); \
	  [ -z "$$files" ] || build-fuzz/$$t -runs=0 $$files >/dev/null 2>&1 || { echo "fuzz regression failed: $$t"; exit 1; }; \
	done; echo "fuzz-regress: ok"

check:
	tools/checksrc

# The README's first command: install, build, run on examples/ in front of demo origins.
demo: deps all
	tools/demo.sh

# The README's second command (and .ci/run): everything, including the
# sanitizer build's end-to-end run.
ci: deps
	$(MAKE) -j2 all
	$(MAKE) check
	$(MAKE) test
	$(MAKE) asan-e2e

clean:
	rm -rf build build-asan build-fuzz

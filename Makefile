# pgsync-c: one plain Makefile. `make` builds bin/, `make test` runs every test
# against a real stack it starts itself, `make SANITIZE=1 test` does the same
# under AddressSanitizer and UndefinedBehaviorSanitizer.

CC      ?= cc
PKGS    := libpq hiredis jansson libcurl openssl
VERSION := 0.1.0
PREFIX  ?= /usr/local

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wwrite-strings
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -MMD -MP -Icommon -Icommon/util -Icommon/io \
           -DPGS_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lev -lz -lm -pthread

ifeq ($(SANITIZE),1)
BUILD   := build/san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS  += $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
else
BUILD   := build/rel
endif
BIN     := bin

# common/util: generic helpers; common/io: the adapters (Redis, the search
# engine); common/: the domain. producer/ and consumer/ include only common/;
# tools/ (the orchestrator and the ops tools) may include producer/ and consumer/.
COMMON_SRC   := $(wildcard common/*.c common/util/*.c common/io/*.c)
PRODUCER_LIB := $(filter-out producer/main.c,$(wildcard producer/*.c))
CONSUMER_LIB := $(filter-out consumer/main.c,$(wildcard consumer/*.c))
TOOLS_LIB    := $(filter-out tools/%_main.c,$(wildcard tools/*.c))
LIB_SRC      := $(COMMON_SRC) $(PRODUCER_LIB) $(CONSUMER_LIB) $(TOOLS_LIB)
LIB_OBJ      := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB          := $(BUILD)/libpgsync.a

PROGRAMS := $(BIN)/pgsync $(BIN)/pgsync-producer $(BIN)/pgsync-consumer \
            $(BIN)/pgsync-bootstrap
PROGRAM_MAIN_pgsync           := tools/pgsync_main.c
PROGRAM_MAIN_pgsync-producer  := producer/main.c
PROGRAM_MAIN_pgsync-consumer  := consumer/main.c
PROGRAM_MAIN_pgsync-bootstrap := tools/bootstrap_main.c
EXTRA_MAINS := $(filter-out $(PROGRAM_MAIN_pgsync) $(PROGRAM_MAIN_pgsync-bootstrap), \
               $(wildcard tools/*_main.c))
# further tools: tools/foo_main.c -> bin/pgsync-foo
EXTRA_PROGRAMS := $(patsubst %_main.c,$(BIN)/pgsync-%,$(notdir $(EXTRA_MAINS)))

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_TESTS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all test test-unit test-es test-integration demo demo-stop bench clean format install unit-tests fuzz deps
all: $(PROGRAMS) $(EXTRA_PROGRAMS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tools/%.o: CFLAGS += -Iproducer -Iconsumer

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# bin/ holds one build type at a time: switching (SANITIZE=1 or not) relinks it
BUILD_STAMP := $(BIN)/.built-$(notdir $(BUILD))
$(BUILD_STAMP):
	@mkdir -p $(BIN)
	@rm -f $(BIN)/.built-*
	@touch $@

define program_rule
$(BIN)/$(1): $(BUILD)/$(2:.c=.o) $(LIB) $(BUILD_STAMP)
	@mkdir -p $(BIN)
	$$(CC) $$(LDFLAGS) -o $$@ $(BUILD)/$(2:.c=.o) $(LIB) $$(LDLIBS)
endef
$(foreach p,pgsync pgsync-producer pgsync-consumer pgsync-bootstrap,\
  $(eval $(call program_rule,$(p),$(PROGRAM_MAIN_$(p)))))
$(foreach m,$(EXTRA_MAINS),\
  $(eval $(call program_rule,pgsync-$(notdir $(m:_main.c=)),$(m))))

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MF $(dir $@).$(notdir $@).d -Iproducer -Iconsumer -Itools $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS) -lcmocka

unit-tests: $(UNIT_TESTS)

# The whole suite: unit tests, then integration tests against a stack that
# tests/run.sh starts on free loopback ports and stops again.
test: all unit-tests
	BUILD=$(BUILD) tests/run.sh all

test-unit: unit-tests
	BUILD=$(BUILD) tests/run.sh unit

test-integration: all
	BUILD=$(BUILD) tests/run.sh integration

# The same integration suite against a real Elasticsearch node.
test-es: all unit-tests
	PGS_ENGINE=elasticsearch BUILD=$(BUILD) tests/run.sh all

# On a fresh Debian machine: installs what is missing, builds, runs the demo.
demo:
	scripts/install-deps.sh
	$(MAKE) all
	scripts/demo.sh

demo-stop:
	scripts/demo.sh stop

# pgsync-c beside PGSync on a real stack (bench/RESULTS.md); BENCH_ARGS=--quick for a short run
bench: all
	bench/run $(BENCH_ARGS)

format:
	clang-format -i common/*.[ch] common/util/*.[ch] common/io/*.[ch] producer/*.[ch] \
	    consumer/*.[ch] tools/*.[ch] tests/unit/*.c

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(PROGRAMS) $(EXTRA_PROGRAMS) $(DESTDIR)$(PREFIX)/bin/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	$(if $(wildcard man/*.1),install -m 644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/)

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)

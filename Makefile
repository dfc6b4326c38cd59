# calmbind: C core embedding Lua 5.4, scripts embedded into the binary.
# Objects go under $(B)/ (build/ by default, build/asan/ for the sanitizer run).

PKGS        := lua5.4 libcurl lua5.4-cjson libcrypto
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    := $(shell pkg-config --libs $(PKGS)) -lm
CC          ?= cc
OPT         ?= -O2 -g
WARN        := -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wwrite-strings -Wundef
# CI builds with -Werror; locally a warning should not stop an experiment.
ifeq ($(CI),true)
WERROR      ?= -Werror
endif
SAN         ?=
B           ?= build
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions

ALL_CFLAGS  = $(OPT) $(WARN) $(WERROR) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) $(SAN) $(CFLAGS)
SRC         := $(sort $(wildcard src/*.c))
CORE_OBJ    := $(patsubst src/%.c,$(B)/obj/%.o,$(filter-out src/main.c,$(SRC))) $(B)/obj/embedded.o
SCRIPTS     := $(sort $(shell find scripts -name '*.lua'))
UNIT_SRC    := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

.PHONY: all test unit asan bench demo fuzz install uninstall deb clean
all: $(B)/calmbind $(B)/completion/calmbind.bash $(B)/completion/_calmbind

$(B)/calmbind: $(B)/obj/main.o $(CORE_OBJ)
	@echo "  LD    $@"
	@$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/obj/%.o: src/%.c | $(B)/obj
	@echo "  CC    $<"
	@$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# The embedder is a build tool: plain flags, never sanitized. It precompiles
# the scripts with the same Lua the binary links.
$(B)/embed: tools/embed.c | $(B)/obj
	@$(CC) -O1 -std=c99 -Wall -Wextra $(shell pkg-config --cflags lua5.4) -o $@ $< $(shell pkg-config --libs lua5.4)

$(B)/embedded.c: $(B)/embed $(SCRIPTS)
	@echo "  EMBED $(words $(SCRIPTS)) scripts"
	@$(B)/embed scripts $(SCRIPTS) > $@.tmp && mv $@.tmp $@

$(B)/obj/embedded.o: $(B)/embedded.c
	@$(CC) $(OPT) -std=c99 -Iinclude $(PKG_CFLAGS) $(SAN) -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(CORE_OBJ) tests/unit/check.h | $(B)/tests
	@echo "  CC    $<"
	@$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(CORE_OBJ) $(PKG_LIBS)

$(B)/obj $(B)/tests:
	@mkdir -p $@

unit: $(UNIT_BIN)

# The one test command: unit, Lua, fake BTP and integration suites, one summary line.
test: all unit
	@CALMBIND=$(abspath $(B)/calmbind) UNIT_DIR=$(abspath $(B)/tests) sh tests/run.sh

# Everything again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	@$(MAKE) --no-print-directory B=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

$(B)/peakrss: bench/peakrss.c
	@$(CC) -O2 -std=c99 -D_GNU_SOURCE -Wall -Wextra -o $@ $<

bench: all $(B)/peakrss
	@sh bench/run.sh $(abspath $(B)/calmbind)

demo: all
	@sh tests/fakebtp/demo.sh $(abspath $(B)/calmbind)

fuzz: all
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

# Shell completion is generated from the option specs the parser uses, by the
# binary itself (built-in scripts only: no admin overrides leak in).
$(B)/completion/calmbind.bash: $(B)/calmbind
	@mkdir -p $(@D)
	@env -u CALMBIND_PATH XDG_CONFIG_HOME=/nonexistent $(B)/calmbind completion bash > $@.tmp && mv $@.tmp $@

$(B)/completion/_calmbind: $(B)/calmbind
	@mkdir -p $(@D)
	@env -u CALMBIND_PATH XDG_CONFIG_HOME=/nonexistent $(B)/calmbind completion zsh > $@.tmp && mv $@.tmp $@

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 0755 $(B)/calmbind $(DESTDIR)$(BINDIR)/calmbind
	install -m 0644 docs/calmbind.1 $(DESTDIR)$(MANDIR)/man1/calmbind.1
	install -m 0644 $(B)/completion/calmbind.bash $(DESTDIR)$(BASHCOMPDIR)/calmbind
	install -m 0644 $(B)/completion/_calmbind $(DESTDIR)$(ZSHCOMPDIR)/_calmbind

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/calmbind $(DESTDIR)$(MANDIR)/man1/calmbind.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/calmbind $(DESTDIR)$(ZSHCOMPDIR)/_calmbind

# A Debian package (build/calmbind_<version>_<arch>.deb), checked by lintian.
deb:
	@sh tools/mkdeb.sh $(B)
	@lintian --fail-on error,warning $(B)/calmbind_*.deb

clean:
	rm -rf build

-include $(wildcard $(B)/obj/*.d)

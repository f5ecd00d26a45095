# kanjiki: relay guard and snowshoe-spam milter.
#
#   make            build kanjiki-milter and kanjiki into $(BUILD)/
#   make check      install missing Debian packages, build, run every test
#   make check-asan unit tests built with AddressSanitizer + UBSan
#   make demo       private Postfix on loopback with kanjiki-milter in front
#   make bench      resolver and snowshoe detector benchmarks (figures, not pass/fail)
#   make corpus     replay ../shared/corpus through the snowshoe detector (figures)
#   make install    PREFIX=/usr/local DESTDIR= (binaries, man pages, config)

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/kanjiki
SYSCONFDIR ?= /etc/kanjiki
SYSTEMDUNITDIR ?= /etc/systemd/system
LOGROTATEDIR ?= /etc/logrotate.d
BUILD      ?= build
VERSION     = 0.1.0

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
           -Wmissing-prototypes
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=all
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(EXTRA_CFLAGS) \
           -Ilib -I$(BUILD)/gen -DKANJIKI_SYSCONFDIR='"$(SYSCONFDIR)"' \
           -DKANJIKI_VERSION='"$(VERSION)"'
LDFLAGS_ALL = $(LDFLAGS) $(EXTRA_LDFLAGS)

LIB_SRC  = $(sort $(wildcard lib/*.c))
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/schema_sql.o
MILT_SRC = $(sort $(wildcard milter/*.c))
MILT_OBJ = $(MILT_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  = $(sort $(wildcard cli/*.c))
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(sort $(wildcard tests/unit/check_*.c))
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SQL      = $(sort $(wildcard sql/[0-9]*.sql))

LIBS     = -lsqlite3 -lspf2 -lcares -lpthread -lm
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)

.PHONY: all deps check check-asan unit cli-tests milter-tests e2e demo bench corpus install clean

all: $(BUILD)/kanjiki-milter $(BUILD)/kanjiki

$(BUILD)/%.o: %.c $(wildcard lib/*.h cli/*.h) $(BUILD)/gen/schema_sql.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The schema is compiled into the binaries so that a database can be created
# or upgraded without the sql/ folder being installed anywhere.
$(BUILD)/gen/schema_sql.c $(BUILD)/gen/schema_sql.h &: $(SQL) tools/embed-sql.sh
	@mkdir -p $(BUILD)/gen
	sh tools/embed-sql.sh $(BUILD)/gen/schema_sql $(SQL)

$(BUILD)/gen/schema_sql.o: $(BUILD)/gen/schema_sql.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libkanjiki.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/kanjiki-milter: $(MILT_OBJ) $(BUILD)/libkanjiki.a
	$(CC) $(ALL_CFLAGS) -o $@ $(MILT_OBJ) $(BUILD)/libkanjiki.a -lmilter $(LIBS) $(LDFLAGS_ALL)

# kanjiki audit speaks TLS (OpenSSL); only the command line links it
$(BUILD)/kanjiki: $(CLI_OBJ) $(BUILD)/libkanjiki.a
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libkanjiki.a $(LIBS) -lssl -lcrypto $(LDFLAGS_ALL)

$(BUILD)/tests/check_%: tests/unit/check_%.c $(BUILD)/libkanjiki.a $(wildcard tests/unit/*.h)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(BUILD)/libkanjiki.a $(CHECK_LIBS) $(LIBS) $(LDFLAGS_ALL)

deps:
	@sh tools/deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do \
	  echo "== $$t"; CK_FORK=yes KANJIKI_TESTDATA=tests/data $$t; done

# The command line on crafted input (kanjiki replay) and against scripted
# servers that misbehave (kanjiki audit).
cli-tests: all
	@python3 tests/cli/test_replay.py $(BUILD)
	@python3 tests/cli/test_audit.py $(BUILD)
	@python3 tests/cli/test_prune.py $(BUILD)
	@python3 tests/cli/test_trace.py $(BUILD)
	@python3 tests/cli/test_install.py $(BUILD)

# The real daemon driven over its socket by our own milter-protocol client.
milter-tests: all
	@sh tests/milter/run.sh $(BUILD)

# A real private Postfix on loopback with kanjiki-milter in front of it.
e2e: all
	@sh tests/e2e/run.sh $(BUILD)

check: deps
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) cli-tests
	$(MAKE) milter-tests
	$(MAKE) e2e

# Unit tests only: the e2e suite drives a real Postfix, whose own processes
# are not instrumented, so ASan adds nothing there but time.
check-asan: deps
	$(MAKE) BUILD=build-asan EXTRA_CFLAGS="$(SAN)" EXTRA_LDFLAGS="$(SAN)" \
	  CFLAGS="-O1 -g" unit

# Figures, not a test: lookups per second from the cache and from a local
# server, and the wall time of parallel lookups where one never answers.
$(BUILD)/bench_dns: tests/bench/bench_dns.c $(BUILD)/libkanjiki.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkanjiki.a $(LIBS) $(LDFLAGS_ALL)

$(BUILD)/bench_snowshoe: tests/bench/bench_snowshoe.c $(BUILD)/libkanjiki.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkanjiki.a $(LIBS) $(LDFLAGS_ALL)

$(BUILD)/bench_prune: tests/bench/bench_prune.c $(BUILD)/libkanjiki.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkanjiki.a $(LIBS) $(LDFLAGS_ALL)

bench: $(BUILD)/bench_dns $(BUILD)/bench_snowshoe $(BUILD)/bench_prune
	@sh tests/bench/run.sh $(BUILD)

# A measurement on the evaluation corpus when it is there (SKIP otherwise).
corpus: all
	@python3 tests/corpus/measure.py $(BUILD)

demo: deps
	$(MAKE) all
	@sh tests/e2e/demo.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(SYSCONFDIR)/rules $(DESTDIR)$(DATADIR)/sql
	install -m 0755 $(BUILD)/kanjiki-milter $(DESTDIR)$(SBINDIR)/kanjiki-milter
	install -m 0755 $(BUILD)/kanjiki $(DESTDIR)$(BINDIR)/kanjiki
	install -m 0644 man/kanjiki.1 $(DESTDIR)$(MANDIR)/man1/kanjiki.1
	install -m 0644 man/kanjiki.conf.5 man/kanjiki.rules.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/kanjiki-milter.8 $(DESTDIR)$(MANDIR)/man8/kanjiki-milter.8
	install -m 0644 $(SQL) $(DESTDIR)$(DATADIR)/sql/
	@# never overwrite an administrator's edited policy
	test -e $(DESTDIR)$(SYSCONFDIR)/kanjiki.conf || \
	  install -m 0644 contrib/kanjiki.conf $(DESTDIR)$(SYSCONFDIR)/kanjiki.conf
	for f in rules/*.rules rules/*.list; do \
	  test -e $(DESTDIR)$(SYSCONFDIR)/$$f || install -m 0644 $$f $(DESTDIR)$(SYSCONFDIR)/$$f; \
	done
	@# service, log rotation and the MTA snippets, for the administrator to use
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DATADIR)/contrib/postfix \
	  $(DESTDIR)$(DATADIR)/contrib/sendmail $(DESTDIR)$(LOGROTATEDIR)
	sed 's|/usr/local/sbin/|$(SBINDIR)/|' contrib/systemd/kanjiki-milter.service \
	  > $(DESTDIR)$(SYSTEMDUNITDIR)/kanjiki-milter.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/kanjiki-milter.service
	test -e $(DESTDIR)$(LOGROTATEDIR)/kanjiki || \
	  install -m 0644 contrib/logrotate/kanjiki $(DESTDIR)$(LOGROTATEDIR)/kanjiki
	install -m 0644 contrib/postfix/* $(DESTDIR)$(DATADIR)/contrib/postfix/
	if [ -d contrib/sendmail ]; then install -m 0644 contrib/sendmail/* $(DESTDIR)$(DATADIR)/contrib/sendmail/; fi

clean:
	rm -rf build build-asan

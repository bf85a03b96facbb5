# Makefile - etcd in C.  `make` builds the static release binary bin/etcd,
# `make test` the ASan+UBSan build and every test, `make run` a single-node
# server with etcd's defaults.  build.sh installs missing Debian packages.

SRCS     := mem.c pb.c api.c json.c member.c hpack.c h2.c grpc.c http.c loop.c mvcc.c rpc.c server.c metrics.c log.c crc32c.c wal.c raft.c lease.c node.c db.c watch.c backend.c lock.c compactor.c snap.c tls.c client.c ctl.c ctl_out.c ctl_kv.c ctl_lease.c ctl_cluster.c ctl_watch.c ctl_snapshot.c ctl_lock.c ctl_auth.c ctl_misc.c ctl_complete.c
MAIN     := etcd.c
HDRS     := $(wildcard *.h)
TESTS    := $(patsubst tests/%.c,build/test/%,$(wildcard tests/test_*.c))

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
CSTD     := -std=c11 -D_GNU_SOURCE

# release: static, musl when present (smaller, no NSS), else static glibc
MUSLCC   := $(shell command -v musl-gcc 2>/dev/null)
RELCC    ?= $(if $(MUSLCC),musl-gcc,$(CC))
RELFLAGS := $(CSTD) $(WARN) -Os -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables
RELLD    := -static -pthread -Wl,--gc-sections -s
BEARSSL_A := /usr/lib/x86_64-linux-gnu/libbearssl.a
# musl-gcc does not search /usr/include: give it BearSSL's headers alone
RELINC   := $(if $(MUSLCC),-Ibuild/musl-inc,)
RELSRCS  := $(SRCS) $(MAIN) $(if $(MUSLCC),compat_musl.c,)

# test build: dynamic, sanitizers
TESTCC   ?= gcc
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSTFLAGS := $(CSTD) $(WARN) -O1 -g $(SANFLAGS) -DETCD_TEST_BUILD

FUZZ_SECONDS ?= 20

.PHONY: all run test unit e2e deps clean clean-objs check-clang fuzz

all: bin/etcd

deps:
	@./build.sh deps

bin/etcd: $(RELSRCS) $(HDRS)
	@mkdir -p bin build/musl-inc
	@ln -sfn /usr/include/bearssl.h /usr/include/bearssl build/musl-inc/
	$(RELCC) $(RELFLAGS) $(RELINC) -o $@ $(RELSRCS) $(BEARSSL_A) $(RELLD)

build/test/etcd: $(SRCS) $(MAIN) $(HDRS)
	@mkdir -p build/test
	$(TESTCC) $(TSTFLAGS) -o $@ $(SRCS) $(MAIN) -lbearssl -pthread

build/test/libetcd.a: $(patsubst %.c,build/test/%.o,$(SRCS))
	rm -f $@ && ar rcs $@ $^

build/test/%.o: %.c $(HDRS)
	@mkdir -p build/test
	$(TESTCC) $(TSTFLAGS) -c -o $@ $<

build/test/test_%: tests/test_%.c build/test/libetcd.a $(HDRS)
	$(TESTCC) $(TSTFLAGS) -I. -o $@ $< build/test/libetcd.a -lcmocka -lbearssl -pthread

run: deps bin/etcd
	./bin/etcd

unit: $(TESTS)
	@./build.sh unit $(TESTS)

e2e: bin/etcd build/test/etcd
	@./build.sh e2e
	@./build.sh e2e-release

test: deps
	@./build.sh reset
	@$(MAKE) --no-print-directory unit e2e fuzz
	@./build.sh summary

check-clang:
	$(MAKE) clean-objs && $(MAKE) TESTCC=clang build/test/etcd $(TESTS)

fuzz:
	@./build.sh fuzz $(FUZZ_SECONDS)

clean-objs:
	rm -rf build

clean:
	rm -rf build bin

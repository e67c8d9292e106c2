# Builds and runs the libFuzzer targets; GNU make.  Called by `make fuzz`
# (Makefile.am), which passes the compiler and flags configure found:
#   S        the source tree
#   FUZZ_CC  clang
#   FUZZ_CPPFLAGS, FUZZ_CFLAGS, FUZZ_LIBS, CORE_SOURCES (libpmcore's)
#   FUZZ_SECONDS  how long each target runs (default 60)
#   FUZZ_RUNS     stop a target earlier, after this many executions
#   FUZZ_JOBS     how many run at once (make -j; `make fuzz` uses 2)
# Everything built or found goes under fuzz/ in the build tree: bin/, obj/,
# out/TARGET.log, out/work/TARGET (inputs found this run), out/crash/TARGET.

FUZZ_TARGETS = imap-response imap-session pop3-reply pop3-undot \
	pop3-session config oauth-token oauth-device oauth-discovery \
	smtp-reply envelope sasl-error mbox-quote state
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?=
FUZZ_FLAGS = -g -O1 -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
# ASan's defaults keep 256 MB of freed memory in quarantine and record 30
# frames per allocation; for millions of short runs that is most of the
# time (page faults on ever-new quarantine pages).  A 16 MB quarantine still
# catches a use after free within an input, and a crash's own stack is
# whole: the targets run two to three times faster.
FUZZ_ASAN_OPTIONS ?= quarantine_size_mb=16:malloc_context_size=5
# Each input may take this many seconds, and be at most this long.  A
# slow-unit-* file libFuzzer leaves for an input over 10 s is a hint, not
# a crash, and is not counted as one.
FUZZ_TIMEOUT = 25
FUZZ_MAX_LEN = 8192

B = fuzz
HEADERS = $(wildcard $(S)/src/*.h $(S)/src/oauth/*.h $(S)/include/pullmail/*.h \
	$(S)/plugins/*/*.h $(S)/fuzz/*.h $(S)/fuzz/shim/*.h \
	$(S)/tests/unit/mock-host.h)
ALL_CPPFLAGS = $(FUZZ_CPPFLAGS) -I$(S)/fuzz -I$(S)/fuzz/shim \
	-I$(S)/tests/unit -I$(S)/plugins/common -I$(S)/plugins/imap \
	-I$(S)/plugins/pop3

# The core (libpmcore's sources) as one archive built for fuzzing; a
# target that compiles a source file in (to reach its static parser)
# takes nothing else from that file's member.
CORE_OBJS = $(patsubst src/%.c,$(B)/obj/%.o,$(filter src/%.c,$(CORE_SOURCES)))
$(B)/obj/%.o: $(S)/src/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) $(FUZZ_FLAGS) \
	    -fsanitize=fuzzer-no-link -c $< -o $@
$(B)/obj/libcore.a: $(CORE_OBJS)
	rm -f $@
	ar rcs $@ $(CORE_OBJS)

PLUGIN_UTIL = $(S)/plugins/common/plugin-util.c
IMAP = $(S)/plugins/imap/imap-parse.c $(PLUGIN_UTIL)
POP3 = $(S)/plugins/pop3/pop3-parse.c $(PLUGIN_UTIL)
MOCK = $(S)/tests/unit/mock-host.c $(S)/src/secret.c $(S)/src/base64.c \
	$(S)/src/util.c

# What each target is built from besides fuzz/fuzz-TARGET.c.
SRC_imap-response = $(IMAP)
SRC_imap-session = $(S)/plugins/imap/imap.c $(IMAP) $(MOCK)
SRC_pop3-reply = $(POP3)
SRC_pop3-undot = $(POP3)
SRC_pop3-session = $(S)/plugins/pop3/pop3.c $(POP3) $(MOCK)
CORE_TARGETS = config oauth-token oauth-device oauth-discovery smtp-reply \
	envelope sasl-error mbox-quote state
$(foreach t,$(CORE_TARGETS),$(eval SRC_$(t) = $(B)/obj/libcore.a))
$(foreach t,$(CORE_TARGETS),$(eval LIBS_$(t) = $(FUZZ_LIBS)))
# The SMTP target's socket() and connect() are its own (see the target).
LIBS_smtp-reply += -Wl,--wrap=socket -Wl,--wrap=connect

BINS = $(FUZZ_TARGETS:%=$(B)/bin/fuzz-%)
build: $(BINS)

.SECONDEXPANSION:
$(B)/bin/fuzz-%: $(S)/fuzz/fuzz-%.c $$(SRC_$$*) $(HEADERS)
	@mkdir -p $(B)/bin
	$(FUZZ_CC) $(ALL_CPPFLAGS) $(FUZZ_CFLAGS) $(FUZZ_FLAGS) \
	    -fsanitize=fuzzer $< $(SRC_$*) $(LIBS_$*) -o $@

# Run one target for FUZZ_SECONDS on its seeds, former crashers and what
# earlier runs found; its exit status and log go to out/.
RUNS = $(FUZZ_TARGETS:%=run-%)
$(RUNS): run-%: $(B)/bin/fuzz-%
	@mkdir -p $(B)/out/work/$* $(B)/out/crash/$*
	@echo "fuzz-$*: $(FUZZ_SECONDS) s"
	@ASAN_OPTIONS='$(FUZZ_ASAN_OPTIONS)' \
	    $(B)/bin/fuzz-$* -max_total_time=$(FUZZ_SECONDS) \
	    $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)) \
	    -timeout=$(FUZZ_TIMEOUT) -max_len=$(FUZZ_MAX_LEN) \
	    -print_final_stats=1 -artifact_prefix=$(B)/out/crash/$*/ \
	    $(B)/out/work/$* $(wildcard $(S)/fuzz/corpus/$* \
	    $(S)/fuzz/regress/$*) >$(B)/out/$*.log 2>&1; \
	echo $$? >$(B)/out/$*.rc

# One line per target: executions, speed, crashes; fails on any crash.
run: $(RUNS)
	@status=0; \
	printf '%-22s %12s %9s %8s  %s\n' target executions exec/s crashes \
	    result; \
	for t in $(FUZZ_TARGETS); do \
		log=$(B)/out/$$t.log; \
		n=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
		s=$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log); \
		c=$$(ls $(B)/out/crash/$$t | grep -cv '^slow-unit-'); \
		rc=$$(cat $(B)/out/$$t.rc); \
		if [ "$$rc" = 0 ] && [ "$$c" = 0 ]; then r=ok; \
		else r="FAILED (exit $$rc; see $$log)"; status=1; fi; \
		printf '%-22s %12s %9s %8s  %s\n' "fuzz-$$t" "$${n:-?}" \
		    "$${s:-?}" "$$c" "$$r"; \
	done; \
	if [ $$status != 0 ]; then \
		echo "make fuzz: a target crashed; the input is in" \
		    "$(B)/out/crash/TARGET/: keep it in" \
		    "fuzz/regress/TARGET/ once fixed"; \
		grep -h -A3 '^==[0-9]*==ERROR\|^SUMMARY' \
		    $(B)/out/*.log | head -n 60; \
	fi; \
	exit $$status

.PHONY: build run $(RUNS)

/*
 * The few Check assertions the tests' mock host (tests/unit/mock-host.c)
 * uses, for the session fuzz targets, which run it outside a Check test:
 * a failed assertion aborts, so the fuzzer reports it as a crash.
 */
#ifndef PM_FUZZ_CHECK_SHIM_H
#define PM_FUZZ_CHECK_SHIM_H

#include <stdio.h>
#include <stdlib.h>

#define ck_assert_msg(c, ...) do { \
	if (!(c)) { \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} \
} while (0)
#define ck_assert_fuzz(c) ck_assert_msg(c, "assertion %s failed", #c)
#define ck_assert_int_eq(a, b)		ck_assert_fuzz((a) == (b))
#define ck_assert_int_ge(a, b)		ck_assert_fuzz((a) >= (b))
#define ck_assert_uint_ge(a, b)		ck_assert_fuzz((a) >= (b))
#define ck_assert_uint_lt(a, b)		ck_assert_fuzz((a) < (b))
#define ck_assert_ptr_nonnull(p)	ck_assert_fuzz((p) != NULL)

#endif

/* Base64 in both alphabets: RFC 4648's vectors, broken input, every byte. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "secret.h"
#include "suites.h"

/* RFC 4648 section 10, plus bytes that use the two alphabets' last
 * characters, in both: std padded, url not. */
static const struct {
	const char *plain;
	size_t len;
	const char *std;
	const char *url;
} b64_vectors[] = {
	{ "", 0, "", "" },
	{ "f", 1, "Zg==", "Zg" },
	{ "fo", 2, "Zm8=", "Zm8" },
	{ "foo", 3, "Zm9v", "Zm9v" },
	{ "foob", 4, "Zm9vYg==", "Zm9vYg" },
	{ "fooba", 5, "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", 6, "Zm9vYmFy", "Zm9vYmFy" },
	{ "\xfb\xff", 2, "+/8=", "-_8" },
	{ "\x00\x01\x02", 3, "AAEC", "AAEC" },
	{ "\xff\xfe\xfd\xfc", 4, "//79/A==", "__79_A" },
};

/* Decode in, expecting exactly len bytes of plain and a NUL after them. */
static void
check_decodes(enum base64_alphabet a, const char *in, const char *plain,
    size_t len)
{
	unsigned char *out;
	size_t n;

	ck_assert_msg(base64_decode(a, in, strlen(in), &out, &n) == 0,
	    "refused: %s", in);
	ck_assert_uint_eq(n, len);
	ck_assert_mem_eq(out, plain, len);
	ck_assert_int_eq(out[n], '\0');
	free(out);
}

START_TEST(test_encode)
{
	char *out;

	out = base64_encode(BASE64_STD, b64_vectors[_i].plain,
	    b64_vectors[_i].len);
	ck_assert_str_eq(out, b64_vectors[_i].std);
	free(out);
	out = base64_encode(BASE64_URL, b64_vectors[_i].plain,
	    b64_vectors[_i].len);
	ck_assert_str_eq(out, b64_vectors[_i].url);
	free(out);
}
END_TEST

START_TEST(test_decode)
{
	check_decodes(BASE64_STD, b64_vectors[_i].std, b64_vectors[_i].plain,
	    b64_vectors[_i].len);
	check_decodes(BASE64_URL, b64_vectors[_i].url, b64_vectors[_i].plain,
	    b64_vectors[_i].len);
}
END_TEST

/* base64url takes padding when it is right (some encoders write it). */
START_TEST(test_decode_url_padded)
{
	check_decodes(BASE64_URL, "Zg==", "f", 1);
	check_decodes(BASE64_URL, "Zm8=", "fo", 2);
	check_decodes(BASE64_URL, "__79_A==", "\xff\xfe\xfd\xfc", 4);
}
END_TEST

START_TEST(test_encode_secret)
{
	struct pm_secret *s = base64_encode_secret(b64_vectors[_i].plain,
	    b64_vectors[_i].len);

	ck_assert_str_eq(secret_reveal(s), b64_vectors[_i].std);
	ck_assert_uint_eq(secret_len(s), strlen(b64_vectors[_i].std));
	secret_free(s);
}
END_TEST

/* Inputs a strict decoder must refuse; len 0 means strlen. */
static const struct {
	enum base64_alphabet a;
	const char *in;
	size_t len;
	const char *why;
} b64_broken[] = {
	{ BASE64_STD, "Zg=", 0, "length not a multiple of 4" },
	{ BASE64_STD, "Zg", 0, "missing padding" },
	{ BASE64_STD, "Zm9vY", 0, "dangling character" },
	{ BASE64_STD, "Z===", 0, "three pad characters" },
	{ BASE64_STD, "====", 0, "only padding" },
	{ BASE64_STD, "Zg==Zg==", 0, "padding in the middle" },
	{ BASE64_STD, "Zm=v", 0, "pad before data" },
	{ BASE64_STD, "Zm9v\r\n", 0, "trailing CRLF" },
	{ BASE64_STD, "Zm9v YmFy", 0, "space inside" },
	{ BASE64_STD, " Zm9v", 0, "leading space" },
	{ BASE64_STD, "Zm9\tv", 0, "tab inside" },
	{ BASE64_STD, "Zm9-", 0, "base64url character '-'" },
	{ BASE64_STD, "Zm9_", 0, "base64url character '_'" },
	{ BASE64_STD, "Zm9*", 0, "character outside the alphabet" },
	{ BASE64_STD, "Zm\xc3\xa9", 0, "non-ASCII" },
	{ BASE64_STD, "Zm9\0", 4, "embedded NUL" },
	{ BASE64_STD, "Zh==", 0, "non-zero pad bits (one byte)" },
	{ BASE64_STD, "Zm9=", 0, "non-zero pad bits (two bytes)" },
	{ BASE64_URL, "Z", 0, "one character" },
	{ BASE64_URL, "Zm9vY", 0, "dangling character" },
	{ BASE64_URL, "Zg=", 0, "padding that does not fill the group" },
	{ BASE64_URL, "Zg===", 0, "three pad characters" },
	{ BASE64_URL, "Zm9v=", 0, "padding after a full group" },
	{ BASE64_URL, "==", 0, "only padding" },
	{ BASE64_URL, "Zg=x", 0, "pad before data" },
	{ BASE64_URL, "Zm9+", 0, "standard character '+'" },
	{ BASE64_URL, "Zm9/", 0, "standard character '/'" },
	{ BASE64_URL, "Zm9v\n", 0, "trailing LF" },
	{ BASE64_URL, "Zm 9v", 0, "space inside" },
	{ BASE64_URL, "Zm9\0", 4, "embedded NUL" },
	{ BASE64_URL, "Zh", 0, "non-zero pad bits (one byte)" },
	{ BASE64_URL, "Zm9", 0, "non-zero pad bits (two bytes)" },
};

START_TEST(test_decode_broken)
{
	unsigned char *out = (unsigned char *)"sentinel";
	size_t len = 99, n;

	n = b64_broken[_i].len != 0 ? b64_broken[_i].len :
	    strlen(b64_broken[_i].in);
	ck_assert_msg(base64_decode(b64_broken[_i].a, b64_broken[_i].in, n,
	    &out, &len) == -1, "accepted: %s", b64_broken[_i].why);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(len, 0);
}
END_TEST

/* Every byte value survives encode + decode, at each length mod 3, in
 * both alphabets. */
START_TEST(test_roundtrip)
{
	static const enum base64_alphabet as[] = { BASE64_STD, BASE64_URL };
	unsigned char in[256 + 2], *out;
	size_t len, n = 256 + (size_t)_i, k;
	char *b64;
	int i;

	for (i = 0; i < (int)n; i++)
		in[i] = (unsigned char)(255 - i % 256);
	for (k = 0; k < 2; k++) {
		b64 = base64_encode(as[k], in, n);
		ck_assert_uint_eq(strlen(b64), as[k] == BASE64_STD ?
		    (n + 2) / 3 * 4 : (n * 4 + 2) / 3);
		ck_assert_int_eq(base64_decode(as[k], b64, strlen(b64), &out,
		    &len), 0);
		ck_assert_uint_eq(len, n);
		ck_assert_mem_eq(out, in, n);
		free(out);
		free(b64);
	}
}
END_TEST

#define N(a)	((int)(sizeof (a) / sizeof (a)[0]))

Suite *
suite_base64(void)
{
	Suite *s = suite_create("base64");
	TCase *tc = tcase_create("rfc4648");

	tcase_add_loop_test(tc, test_encode, 0, N(b64_vectors));
	tcase_add_loop_test(tc, test_decode, 0, N(b64_vectors));
	tcase_add_test(tc, test_decode_url_padded);
	tcase_add_loop_test(tc, test_encode_secret, 0, N(b64_vectors));
	tcase_add_loop_test(tc, test_decode_broken, 0, N(b64_broken));
	tcase_add_loop_test(tc, test_roundtrip, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

/*
 * Fuzz target: a device authorization endpoint's answer (RFC 8628), parsed
 * by device_start() in src/oauth/device.c, which is static and so compiled
 * in here.  The first input byte picks the HTTP status, the rest is the
 * body (see fuzz-oauth-http.h).
 */
#include "autoconf.h"

#include "fuzz-oauth-http.h"

#define oauth_http_post fuzz_http_post
#include "oauth/device.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	struct oauth_request req;
	char *code = NULL, *err = NULL;
	long interval = 0;
	time_t deadline = 0;
	int r;

	if (size < 1)
		return 0;
	if (!quiet && freopen("/dev/null", "w", stdout) != NULL)
		quiet = 1;	/* the user code is printed for a human */
	fuzz_answer(data, size);
	memset(&req, 0, sizeof req);
	req.account = "fuzz";
	req.client_id = "client";
	req.device_url = "https://login.example.test/devicecode";
	req.token_url = "https://login.example.test/token";
	req.scope = "mail offline_access";
	req.flow = OAUTH_FLOW_DEVICE;
	req.timeout = 60;
	r = device_start(&req, &code, &interval, &deadline, &err);
	if ((r == PM_OK) != (code != NULL) || (r != PM_OK && err == NULL) ||
	    (r == PM_OK && (interval <= 0 || interval >= 86400)))
		abort();
	free(code);
	free(err);
	return 0;
}

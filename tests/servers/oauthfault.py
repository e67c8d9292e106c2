#!/usr/bin/env python3
"""A fault injector for pullmail's token module: an HTTP server misbehaving
as no real authorization server does on purpose (standard library only).

  oauthfault.py --mode MODE --port-file FILE --log FILE [--bind ADDR]
                [--endpoint-host HOST] [--upstream-port N (ignored)]
                [--code N] [--claims JSON]

MODE:
  echo       every request gets HTTP 400 invalid_client whose
             error_description echoes the whole request body (also with
             its %XX in lower case) and the Authorization header, as a
             careless endpoint might;
  discovery  GET /.well-known/openid-configuration answers a document whose
             issuer is this server and whose token endpoint is plain
             http://ENDPOINT-HOST:PORT/token (this very server, reached by
             another name or address than loopback); anything else is 404;
  big        every request gets HTTP 200 and a JSON body of 1 MiB (more than
             pullmail takes), starting like a token response;
  stall      every request gets the headers and the first 1000 of 5017
             announced bytes of a token response, then nothing, the
             connection held open until the client gives up;
  aadsts     every request gets Microsoft Entra ID's error for the code
             --code N: HTTP 400 (401 for invalid_client) with "error" and
             "error_description": "AADSTSN: ..." (as login.microsoftonline
             .com answers; pullmail check maps the code to admin terms);
  jwt        every request gets HTTP 200 with an access token that is a
             JWT (unsigned: pullmail reads its claims, never checks them)
             whose claims are the JSON object --claims.

Every request is logged to --log as one line: "REQUEST <method> <path>
<peer address>".  The port is written to --port-file once listening.
"""
import argparse
import base64
import http.server
import json
import os
import re
import socketserver
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self):
        with open(self.server.opts.log, "a") as f:
            f.write("REQUEST %s %s %s\n" % (self.command, self.path,
                                            self.client_address[0]))

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode("latin-1") if n > 0 else ""

    def send(self, status, text, ctype="application/json"):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def answer(self):
        self.record()
        mode = self.server.opts.mode
        body = self.body()
        if mode == "echo":
            auth = self.headers.get("Authorization") or ""
            lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                           body)
            self.send(400, json.dumps({
                "error": "invalid_client",
                "error_description": "bad request: %s (%s); "
                "Authorization: %s" % (body, lower, auth)}))
        elif mode == "discovery":
            port = self.server.server_address[1]
            if self.path != "/.well-known/openid-configuration":
                self.send(404, "{}")
                return
            self.send(200, json.dumps({
                "issuer": "http://127.0.0.1:%d" % port,
                "token_endpoint": "http://%s:%d/token"
                % (self.server.opts.endpoint_host, port)}))
        elif mode == "big":
            text = '{"access_token":"' + "A" * (1 << 20) + '"}'
            self.send(200, text)
        elif mode == "aadsts":
            code = self.server.opts.code
            error = {7000215: "invalid_client", 7000222: "invalid_client",
                     700016: "unauthorized_client", 700027: "invalid_client",
                     65001: "invalid_grant"}.get(code, "invalid_request")
            self.send(401 if error == "invalid_client" else 400, json.dumps({
                "error": error,
                "error_description": "AADSTS%d: fault injector's reply. "
                "Trace ID: 0 Correlation ID: 0 Timestamp: 2026-01-01 "
                "00:00:00Z" % code,
                "error_codes": [code]}))
        elif mode == "jwt":
            def part(obj):
                raw = json.dumps(obj).encode()
                return base64.urlsafe_b64encode(raw).decode().rstrip("=")
            token = "%s.%s.%s" % (part({"alg": "none", "typ": "JWT"}),
                                  part(json.loads(self.server.opts.claims)),
                                  "c2lnbmF0dXJl")
            self.send(200, json.dumps({"access_token": token,
                                       "token_type": "Bearer",
                                       "expires_in": 3599}))
        elif mode == "stall":
            text = '{"access_token":"' + "B" * 4000
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(text) + 1000))
            self.end_headers()
            self.wfile.write(text[:1000].encode())
            self.wfile.flush()
            time.sleep(120)

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True,
                    choices=["echo", "discovery", "big", "stall",
                             "aadsts", "jwt"])
    ap.add_argument("--code", type=int, default=7000215)
    ap.add_argument("--claims", default="{}")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--endpoint-host", default="127.0.0.1")
    ap.add_argument("--upstream-port", default=None)
    opts = ap.parse_args()
    srv = Server((opts.bind, 0), Handler)
    srv.opts = opts
    with open(opts.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(opts.port_file + ".tmp", opts.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Play the human of a delegated OAuth 2.0 grant on oidc-provider's own pages.

The end-to-end tests start `pullmail authorize`, read the URL it prints and
run this script, which drives the provider's interaction pages (the device
user-code page, devInteractions' login and consent forms) with an HTTP
client and a cookie jar, exactly as a browser would submit them.

  human.py device URL USER_CODE LOGIN
      open the verification URI, enter the user code, log in, consent.
  human.py authorize URL LOGIN [--state STATE]
      open the authorization URL, log in, consent, then follow the redirect
      to the client (pullmail's loopback listener); with --state the state
      parameter of that redirect is replaced first (a forged redirect).
      Prints the client's answer (HTTP status and body).
  human.py deny-device URL USER_CODE LOGIN
      as device, but abort on the confirmation page (access_denied).
Exit status 0 on success, 1 on any failure (with a message on stderr).
"""
import html.parser
import http.cookiejar
import sys
import urllib.error
import urllib.parse
import urllib.request


class FormParser(html.parser.HTMLParser):
    """The first form of a page: its action, method and input fields."""

    def __init__(self):
        super().__init__()
        self.form = None
        self.done = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'form' and self.form is None:
            self.form = {'action': a.get('action', ''),
                         'method': a.get('method', 'get').lower(),
                         'fields': {}}
        elif tag == 'input' and self.form is not None and not self.done:
            if a.get('name'):
                self.form['fields'][a['name']] = a.get('value') or ''

    def handle_endtag(self, tag):
        if tag == 'form' and self.form is not None:
            self.done = True


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def die(msg):
    sys.stderr.write('human.py: %s\n' % msg)
    sys.exit(1)


def main():
    if len(sys.argv) < 4:
        die('usage: human.py device|deny-device|authorize URL ...')
    mode, url = sys.argv[1], sys.argv[2]
    if mode in ('device', 'deny-device'):
        if len(sys.argv) != 5:
            die('usage: human.py device URL USER_CODE LOGIN')
        user_code, login = sys.argv[3], sys.argv[4]
        forged_state = None
    else:
        login = sys.argv[3]
        user_code = None
        forged_state = None
        if len(sys.argv) == 6 and sys.argv[4] == '--state':
            forged_state = sys.argv[5]
    provider = urllib.parse.urlsplit(url).netloc
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar), NoRedirect())

    method, data = 'GET', None
    for _ in range(20):
        if urllib.parse.urlsplit(url).netloc != provider:
            # The redirect back to the client: the end of the human's part.
            if forged_state is not None:
                parts = urllib.parse.urlsplit(url)
                q = urllib.parse.parse_qs(parts.query)
                q['state'] = [forged_state]
                url = urllib.parse.urlunsplit(parts._replace(
                    query=urllib.parse.urlencode(q, doseq=True)))
            try:
                with urllib.request.urlopen(url, timeout=20) as r:
                    print('client answered %d: %s' % (
                        r.status, r.read().decode('utf-8', 'replace')))
            except urllib.error.HTTPError as e:
                print('client answered %d: %s' % (
                    e.code, e.read().decode('utf-8', 'replace')))
            return 0
        req = urllib.request.Request(url, data=data, method=method)
        try:
            r = opener.open(req, timeout=20)
            status, body, loc = r.status, r.read(), r.headers.get('Location')
        except urllib.error.HTTPError as e:
            status, body, loc = e.code, e.read(), e.headers.get('Location')
        text = body.decode('utf-8', 'replace')
        if status in (301, 302, 303, 307, 308) and loc:
            url = urllib.parse.urljoin(url, loc)
            method, data = 'GET', None
            continue
        if status != 200:
            die('%s answered %d: %s' % (url, status, text[:300]))
        p = FormParser()
        p.feed(text)
        if p.form is None:
            # A page without a form: the device flow's success page.
            if mode == 'device' and 'success' in text.lower():
                print('device flow completed')
                return 0
            die('no form on %s: %s' % (url, text[:300]))
        fields = p.form['fields']
        if 'user_code' in fields and not fields['user_code']:
            fields['user_code'] = user_code
        if 'login' in fields:
            fields['login'] = login
        if 'password' in fields:
            fields['password'] = 'any password will do'
        aborting = False
        if mode == 'deny-device' and fields.get('confirm') == 'yes':
            fields['abort'] = 'yes'
            aborting = True
        url = urllib.parse.urljoin(url, p.form['action'])
        data = urllib.parse.urlencode(fields).encode()
        method = 'POST' if p.form['method'] == 'post' else 'GET'
        if method == 'GET':
            url += ('&' if '?' in url else '?') + data.decode()
            data = None
        if aborting:
            opener.open(urllib.request.Request(url, data=data,
                                               method=method), timeout=20)
            print('aborted')
            return 0
    die('too many steps')


if __name__ == '__main__':
    sys.exit(main())

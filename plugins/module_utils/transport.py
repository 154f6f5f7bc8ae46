# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON over HTTP(S) for the backends: bounded timeouts, retries with backoff.

Every request names whether it is safe to repeat. Reads and idempotent writes are
retried on transient faults (connection refused, 5xx, timeouts), and a call with all its
retries ends within ``2 x timeout`` (a silent server cannot hold a task longer). A write that is not
safe to repeat is retried only when it certainly did not reach the server (connection
refused); when it may have happened, the caller's ``verify`` callback re-reads the
server state first and decides whether the write must be sent again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import ssl
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request, SSLValidationError

from ansible_collections.baremetal.fleet.plugins.module_utils.pool import (
    PoolAuthError,
    PoolConnectionError,
    PoolError,
)

DEFAULT_TIMEOUT = 30
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 0.5
_BACKOFF_CAP = 8.0


class Response:
    """Status, parsed JSON body (or None) and raw text of one reply."""

    def __init__(self, status, body, text, url):
        self.status = status
        self.body = body
        self.text = text
        self.url = url


def _parse(text):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _is_refused(reason):
    """True when the request certainly never reached the server."""
    if isinstance(reason, ConnectionRefusedError):
        return True
    text = str(reason).lower()
    return "connection refused" in text or "errno 111" in text or "name or service not known" in text


def _is_tls_failure(reason):
    """A certificate the client does not trust (not worth repeating), as opposed to a
    connection that broke during the handshake (transient)."""
    if isinstance(reason, getattr(ssl, "SSLCertVerificationError", ())):
        return True
    text = str(reason).lower()
    return "certificate verify failed" in text or "hostname mismatch" in text or "doesn't match" in text


def _default_context(validate_certs):
    if validate_certs:
        return ssl.create_default_context()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class JsonHttp:
    """A small JSON HTTP client around ``ansible.module_utils.urls.Request``."""

    def __init__(self, base_url, headers=None, timeout=DEFAULT_TIMEOUT, validate_certs=True,
                 ssl_context=None, retries=DEFAULT_RETRIES, backoff=DEFAULT_BACKOFF,
                 header_factory=None, sleep=time.sleep):
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.validate_certs = validate_certs
        # Built once: urls.Request would otherwise load the CA store on every request.
        self.ssl_context = ssl_context or _default_context(validate_certs)
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.header_factory = header_factory
        self._sleep = sleep
        self.requests_sent = 0
        # the whole call, retries and backoff included
        self.total_timeout = 2.0 * float(timeout)

    def url(self, path):
        return self.base_url + path

    def _once(self, method, url, data, timeout=None):
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.header_factory is not None:
            headers.update(self.header_factory(method))
        kwargs = dict(method=method, url=url, data=data, headers=headers, timeout=timeout or self.timeout,
                      validate_certs=self.validate_certs, follow_redirects="safe")
        if self.ssl_context is not None:
            kwargs["context"] = self.ssl_context
        self.requests_sent += 1
        try:
            resp = Request().open(**kwargs)
            text = resp.read().decode("utf-8", "replace")
            return Response(resp.getcode() or 200, _parse(text), text, url)
        except HTTPError as err:
            try:
                text = err.read().decode("utf-8", "replace")
            except Exception:  # pylint: disable=broad-except
                text = ""
            return Response(err.code, _parse(text), text, url)

    def request(self, method, path, body=None, safe=True, verify=None, ok=(200, 201, 204)):
        """Send one request and return a Response for any HTTP status the server gave.

        ``safe``: repeating the request has no extra effect (reads, idempotent writes).
        ``verify``: for unsafe writes, a callable run after an ambiguous failure; it
        re-reads the server and returns a Response-like result when the write did
        happen (the request is then not repeated) or None to send it again.
        Statuses listed in ``ok`` and 4xx are returned; 5xx and transport faults are
        retried as allowed and finally raise PoolConnectionError.
        """
        url = self.url(path)
        data = None if body is None else json.dumps(body).encode("utf-8")
        delay = self.backoff
        last = None
        deadline = time.time() + self.total_timeout
        tries = 0
        for attempt in range(self.retries + 1):
            if attempt:
                left = deadline - time.time()
                if left < 1.0:
                    break  # no time for another attempt: report the last fault
                self._sleep(min(delay, _BACKOFF_CAP, left / 2.0))
                delay *= 2
            maybe_sent = False
            left = deadline - time.time()
            tries += 1
            try:
                resp = self._once(method, url, data, timeout=max(1.0, min(float(self.timeout), left)))
                if resp.status < 500:
                    return resp
                last = PoolConnectionError("server error HTTP %s on %s %s" % (resp.status, method, url),
                                           url=url, status=resp.status,
                                           server_error=_server_text(resp))
                maybe_sent = True
            except SSLValidationError as err:
                raise PoolConnectionError("TLS verification failed for %s: %s" % (url, err), url=url)
            except UrlsConnectionError as err:
                last = PoolConnectionError("cannot reach %s: %s" % (url, err), url=url)
                maybe_sent = not _is_refused(err)
            except URLError as err:
                reason = getattr(err, "reason", err)
                if _is_tls_failure(reason):
                    raise PoolConnectionError("TLS verification failed for %s: %s" % (url, reason), url=url)
                last = PoolConnectionError("cannot reach %s: %s" % (url, reason), url=url)
                maybe_sent = not _is_refused(reason)
            except (socket.timeout, ConnectionError, OSError) as err:
                if _is_tls_failure(err):
                    raise PoolConnectionError("TLS verification failed for %s: %s" % (url, err), url=url)
                last = PoolConnectionError("cannot reach %s: %s" % (url, err), url=url)
                maybe_sent = not _is_refused(err)
            if not safe and maybe_sent:
                if verify is None:
                    raise PoolConnectionError(
                        "%s %s may or may not have been applied (%s); not repeated" % (method, url, last.msg),
                        url=url, status=last.status, server_error=last.server_error)
                done = verify()
                if done is not None:
                    return done
        last.msg = "%s (gave up after %d attempt(s) in %.0f s; each call is bounded by 2 x api_timeout = %.0f s)" % (
            last.msg, tries, time.time() - deadline + self.total_timeout, self.total_timeout)
        raise last


def _server_text(resp):
    body = resp.body
    if isinstance(body, dict):
        for key in ("error", "message"):
            if body.get(key):
                return body[key]
    if isinstance(body, str):
        return body
    return (resp.text or "").strip()[:500] or None


def server_text(resp):
    """The server's own error text from a Response (metal ``message``, plunder ``error``)."""
    return _server_text(resp)


def raise_for_auth(resp, what):
    if resp.status in (401, 403):
        raise PoolAuthError("%s: access denied (HTTP %s); check the HMAC key, its auth type or the token"
                            % (what, resp.status), url=resp.url, status=resp.status,
                            server_error=_server_text(resp))


def unexpected(resp, what, machine=None):
    return PoolError("%s failed with HTTP %s" % (what, resp.status), machine=machine, url=resp.url,
                     status=resp.status, server_error=_server_text(resp))

"""A fault-injecting HTTP proxy for the S3 tests: it sits between
mount.cloudh5 and a real S3 server (Ceph RGW), forwards every request
unchanged, and answers the requests a rule matches itself, with an S3 error.

The Host header is forwarded as it came: SigV4 signs it, so the daemon is
pointed at the proxy (-o endpoint=http://127.0.0.1:PROXYPORT) and the server
checks the signature made for that host, as it would without the proxy.

    p = FaultProxy("127.0.0.1", 7488).start()     # server's port
    p.fail("GET", "/c/x.h5/", 503, "SlowDown", times=2)
    ... p.count("GET", "/c/x.h5/") ...
    p.stop()

A rule matches a request whose method is `method` (or any, None) and whose
path and query (URL-decoded) contain `part`; it answers the next `times`
matches, then falls away.  Every request is logged as (method, path and
query, status sent, answered_by_rule).

The proxy serves from a child process (one thread per connection there):
a test that blocks in a system call on the mount while holding Python's
GIL (h5py does) must not stop the proxy the daemon is waiting for.  Rules
and the log live in a multiprocessing manager shared by both.
"""

import http.client
import http.server
import multiprocessing
import urllib.parse

# Hop-by-hop headers and the ones http.client sets itself.
_DROP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
         "transfer-encoding", "upgrade", "expect", "content-length"}


class FaultProxy:
    def __init__(self, upstream_host, upstream_port):
        self.upstream = (upstream_host, upstream_port)
        ctx = multiprocessing.get_context("fork")
        self.mgr = ctx.Manager()
        self.lock = self.mgr.Lock()
        self.rules = self.mgr.list()
        self.log = self.mgr.list()
        self.ctx = ctx
        self.proc = None
        self.server = None
        self.port = None

    # --------------------------------------------------------- control
    def fail(self, method, part, status, code, times=1, message=None):
        """Answer the next `times` requests matching (method, part) with
        HTTP `status` and an S3 error document naming `code`."""
        with self.lock:
            self.rules.append({"method": method, "part": part,
                               "status": status, "code": code,
                               "message": message or "injected by the "
                               "test proxy", "left": times})

    def clear(self):
        with self.lock:
            del self.rules[:]

    def requests(self, method=None, part=""):
        """The logged requests matching (method, part), oldest first."""
        with self.lock:
            log = list(self.log)
        return [e for e in log
                if (method is None or e[0] == method) and part in e[1]]

    def count(self, method=None, part=""):
        return len(self.requests(method, part))

    def reset_log(self):
        with self.lock:
            del self.log[:]

    def start(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.proc = self.ctx.Process(target=self.server.serve_forever,
                                     daemon=True)
        self.proc.start()
        return self

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.join(10)
            self.proc = None
        if self.server:
            self.server.server_close()
            self.server = None
        self.mgr.shutdown()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    # --------------------------------------------------------- serving
    def _match(self, method, target):
        with self.lock:
            for i, r in enumerate(self.rules):
                if r["left"] > 0 and \
                        (r["method"] is None or r["method"] == method) and \
                        r["part"] in target:
                    r["left"] -= 1
                    self.rules[i] = r  # a manager list holds copies
                    return r
        return None

    def _handle(self, h):
        method = h.command
        target = urllib.parse.unquote(h.path)
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        rule = self._match(method, target)
        # Each request is logged before its answer goes back: a test that
        # reads the log as soon as the daemon has its answer (a close()
        # that returned) must find it there.
        if rule:
            with self.lock:
                self.log.append((method, target, rule["status"], True))
            doc = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<Error><Code>%s</Code><Message>%s</Message>"
                   "<RequestId>fault-proxy</RequestId></Error>"
                   % (rule["code"], rule["message"])).encode()
            h.send_response(rule["status"])
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(doc)))
            h.end_headers()
            if method != "HEAD":
                h.wfile.write(doc)
            return
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() not in _DROP}
        c = http.client.HTTPConnection(*self.upstream, timeout=120)
        logged = False
        try:
            c.putrequest(method, h.path, skip_host=True,
                         skip_accept_encoding=True)
            for k, v in headers.items():
                c.putheader(k, v)
            if body or method in ("PUT", "POST"):
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            resp = c.getresponse()
            data = resp.read()
            with self.lock:
                self.log.append((method, target, resp.status, False))
            logged = True
            h.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _DROP:
                    h.send_header(k, v)
            if method == "HEAD":
                cl = resp.getheader("Content-Length")
                if cl is not None:
                    h.send_header("Content-Length", cl)
            else:
                h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if method != "HEAD":
                h.wfile.write(data)
        except OSError:
            # The server closed the connection (no answer), or the daemon
            # did (it may stop reading once it has what it needs).
            if not logged:
                with self.lock:
                    self.log.append((method, target, 0, False))
            h.close_connection = True
        finally:
            c.close()

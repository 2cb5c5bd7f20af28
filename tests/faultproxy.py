"""A fault-injecting HTTP proxy on 127.0.0.1 in front of a real LLM server (tests and the reliability
campaign). Each request to /v1/chat/completions takes the next fault of a schedule (or none):

  refuse     the connection is closed without an answer (connection reset)
  slow       the answer comes `slow_s` seconds late (past the client's timeout)
  truncate   the headers promise the whole body, half of it is sent, the connection closes
  malformed  HTTP 200 whose body is not JSON
  garbled    HTTP 200, a well-formed completion whose content is cut-off JSON (the model's fault)
  429 / 500  an error status (429 with Retry-After: 0)
  down       the proxy stops listening for good (the server died): every later connection is refused

Everything else (and /v1/models) is forwarded unchanged. `injected` counts what was done.
"""

from __future__ import annotations

import collections
import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("refuse", "slow", "truncate", "malformed", "garbled", "429", "500", "down")
# What a test through the proxy gives the plumbing server (SmolLM2-135M, one thread) for one answer
# (`llm.timeout`), and how late a `slow` fault answers (past it). A 135M answer takes ~5-10 s, but the
# first ~2k-token prompt of a just-started server on a busy machine took more than 30 s (the full suite
# with the LLM tests first; `-n 2` with the sandbox tests beside).
ANSWER_TIMEOUT_S = 50
SLOW_S = 75


class FaultProxy:
    def __init__(self, upstream: str, schedule: list[str | None] | None = None, *, slow_s: float = 6.0,
                 port: int = 0) -> None:  # fmt: skip
        u = urlsplit(upstream)
        self.upstream = (u.hostname, u.port)
        self.schedule = collections.deque(schedule or [])
        self.slow_s = slow_s
        self.injected: collections.Counter = collections.Counter()
        self.forwarded = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port
        self.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        """Listen (again) on the same port: the server came back."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = None
                if self.path.endswith("/chat/completions"):
                    with proxy.lock:
                        fault = proxy.schedule.popleft() if proxy.schedule else None
                        if fault:
                            proxy.injected[fault] += 1
                if fault == "refuse":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "down":
                    self.close_connection = True
                    self.connection.close()
                    threading.Thread(target=proxy.stop, daemon=True).start()
                    return
                if fault in ("429", "500"):
                    msg = json.dumps({"error": {"message": f"injected {fault}", "type": "injected"}}).encode()
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(msg)))
                    if fault == "429":
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                if fault == "malformed":
                    self._send(200, b'{"id": "x", "choices": [{"message": ')
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_s)
                self._forward(body, fault)

            def _send(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self, body: bytes | None, fault: str | None = None) -> None:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=600)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, ctype = resp.status, resp.getheader("Content-Type", "application/json")
                finally:
                    conn.close()
                with proxy.lock:
                    proxy.forwarded += 1
                if fault == "garbled" and status == 200:
                    doc = json.loads(data)
                    content = doc["choices"][0]["message"].get("content") or ""
                    doc["choices"][0]["message"]["content"] = content[: max(1, len(content) // 2)] or "{"
                    data = json.dumps(doc).encode()
                if fault == "truncate":
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(status, data, ctype)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # a client that gave up (timeout) is expected
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

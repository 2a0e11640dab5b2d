#!/usr/bin/env python3
"""Self-test of scripts/delay_proxy.py: `python3 scripts/test_delay_proxy.py` (stdlib only).

Starts a threaded HTTP/1.1 server and the proxy (as a subprocess, on free ports) and checks:
- 10 sequential GETs on one keep-alive connection take >= 10 x delay and < 10 x delay + 1 s,
  over one server-side connection;
- a request body sent in several quick writes, and a 4 MiB body, are delayed once, not per write;
- 8 concurrent connections doing one GET each overlap their delays (well under 8 x delay);
- a client closing makes the server side close, and a server closing makes the client see EOF.
"""

import http.client
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

DELAY_MS = 20
DELAY = DELAY_MS / 1000.0
PROXY = Path(__file__).resolve().parent / "delay_proxy.py"

server_peers = []  # (client address as the server saw it) per request
closed_handlers = []  # client addresses whose handler finished (connection closed)
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        # http.server writes headers and body in two sends; with Nagle on, the body waits for
        # the proxy's delayed ACK (~40 ms on Linux) on keep-alive connections. Real S3 servers
        # (minio, Go) set TCP_NODELAY, so do the same here.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def reply(self, body, close=False):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            server_peers.append(self.client_address)
        self.reply(b"hello " + self.path.encode(),
                   close=self.headers.get("Connection", "").lower() == "close")

    def do_POST(self):
        n = int(self.headers["Content-Length"])
        got = 0
        while got < n:
            chunk = self.rfile.read(min(65536, n - got))
            if not chunk:
                break
            got += len(chunk)
        self.reply(str(got).encode())

    def finish(self):
        super().finish()
        with lock:
            closed_handlers.append(self.client_address)


def start_proxy(target_port):
    tmp = tempfile.mkdtemp(prefix="delay_proxy_test")
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen(
        [sys.executable, str(PROXY), "--listen", "127.0.0.1:0",
         "--target", f"127.0.0.1:{target_port}", "--delay-ms", str(DELAY_MS),
         "--port-file", port_file],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on 127.0.0.1:"), f"proxy said {line!r}"
    port = int(line.rsplit(":", 1)[1])
    assert port > 0
    with open(port_file) as f:
        assert int(f.read()) == port, "port file disagrees with stdout"
    return proc, port


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}")


def wait_for(pred, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


def test_sequential(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.connect()
    with lock:
        server_peers.clear()
    t0 = time.perf_counter()
    for i in range(10):
        conn.request("GET", f"/seq/{i}")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200 and body == f"hello /seq/{i}".encode(), (r.status, body)
    elapsed = time.perf_counter() - t0
    with lock:
        peers = list(server_peers)
    check(10 * DELAY <= elapsed < 10 * DELAY + 1.0,
          f"10 sequential keep-alive GETs took {elapsed * 1000:.1f} ms "
          f"(>= {10 * DELAY_MS} ms, < {10 * DELAY_MS + 1000} ms)")
    check(len(peers) == 10 and len(set(peers)) == 1,
          "the 10 GETs reached the server over one connection")
    # closing the client closes the server side
    peer = peers[0]
    conn.close()
    check(wait_for(lambda: peer in closed_handlers), "client close -> server connection closed")


def test_split_and_large_bodies(port):
    # headers and body in several writes 0.2 ms apart: one delay, not one per write
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    parts = [b"POST /split HTTP/1.1\r\nHost: x\r\n", b"Content-Length: 12\r\n\r\n",
             b"abcd", b"efgh", b"ijkl"]
    t0 = time.perf_counter()
    for p in parts:
        s.sendall(p)
        time.sleep(0.0002)
    resp = b""
    while not resp.endswith(b"\r\n\r\n12"):
        chunk = s.recv(4096)
        if not chunk:
            break
        resp += chunk
    elapsed = time.perf_counter() - t0
    s.close()
    check(resp.endswith(b"12") and DELAY <= elapsed < 2.5 * DELAY,
          f"request split over 5 quick writes: {elapsed * 1000:.1f} ms (one delay)")

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    body = os.urandom(4 << 20)
    t0 = time.perf_counter()
    conn.request("POST", "/big", body=body, headers={"Content-Length": str(len(body))})
    r = conn.getresponse()
    got = r.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    check(got == str(len(body)).encode() and DELAY <= elapsed < DELAY + 0.5,
          f"4 MiB POST: {elapsed * 1000:.1f} ms (one delay plus transfer)")


def concurrent_round(port, n):
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(n)]
    for c in conns:
        c.connect()
    barrier = threading.Barrier(n + 1)
    times = [None] * n
    errors = []

    def one(i):
        try:
            barrier.wait()
            t = time.perf_counter()
            conns[i].request("GET", f"/par/{i}")
            r = conns[i].getresponse()
            assert r.read() == f"hello /par/{i}".encode()
            times[i] = time.perf_counter() - t
        except Exception as e:  # reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for c in conns:
        c.close()
    return elapsed, times, errors


def test_concurrent(port):
    # Best of 3 rounds: on a loaded machine one wake-up can come tens of ms late (a plain
    # asyncio.sleep(0.02) does too); the overlap itself is what is checked.
    n = 8
    rounds = []
    for _ in range(3):
        elapsed, times, errors = concurrent_round(port, n)
        check(not errors, f"8 concurrent GETs succeeded {errors or ''}")
        check(min(times) >= DELAY, f"each concurrent GET waited >= {DELAY_MS} ms "
              f"(min {min(times) * 1000:.1f} ms)")
        rounds.append(elapsed)
        if elapsed < 0.6 * n * DELAY:
            break
    best = min(rounds)
    check(best < 0.6 * n * DELAY,
          f"8 concurrent GETs took {best * 1000:.1f} ms in all "
          f"(< {0.6 * n * DELAY_MS:.0f} ms; serial would be >= {n * DELAY_MS} ms; "
          f"rounds {[round(r * 1000, 1) for r in rounds]})")


def test_server_close(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    t0 = time.perf_counter()
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    elapsed = time.perf_counter() - t0
    s.close()
    check(data.endswith(b"hello /bye") and elapsed < 1.0,
          f"server close -> client sees EOF ({elapsed * 1000:.1f} ms)")


def main():
    # the default listen backlog (5) drops some of 8 simultaneous connects (1 s SYN retry)
    http.server.ThreadingHTTPServer.request_queue_size = 128
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc, port = start_proxy(server.server_address[1])
    try:
        test_sequential(port)
        test_split_and_large_bodies(port)
        test_concurrent(port)
        test_server_close(port)
        check(proc.poll() is None, "proxy still running")
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        server.shutdown()
    print("delay_proxy: all checks passed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Sends each framing case of docs/http1.md to veza-lb and to HAProxy 2.6 (both in front of
the same veza-demo-backend, on loopback) and prints the table: the status each answers, or
`closed` when it closes without an answer. Run from the workspace root after
`cargo build -p veza-lb -p veza-demo-backend`; needs Debian's haproxy."""
import os, socket, subprocess, sys, tempfile, time

CASES = [
    ("Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
    ("Content-Length with a sign (`+5`)", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"),
    ("Content-Length with a space inside (`5 5`)", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\nhello"),
    ("Content-Length overflow (20 digits)", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\nhello"),
    ("two different Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"),
    ("Content-Length and chunked", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("chunked twice, one field", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("chunked twice, two fields", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("last coding not chunked (`chunked, gzip`)", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("Transfer-Encoding in HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("invalid chunk size (`zz`)", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("chunk extension with a NUL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\0b\r\nhello\r\n0\r\n\r\n"),
    ("chunk line ending in bare LF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
    ("chunk data not followed by CRLF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ("absolute form, same authority as Host", b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("absolute form, other authority than Host", b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("no Host in HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n"),
    ("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
    ("NUL in a header value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"),
    ("CR inside a header value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"),
    ("one 20 KB header line", b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 20000 + b"\r\n\r\n"),
    ("9 KB request target", b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_port(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")

def ask(port, raw):
    s = socket.create_connection(("127.0.0.1", port), 2)
    s.settimeout(3)
    try:
        s.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        data = b""
    finally:
        s.close()
    line = data.split(b"\r\n", 1)[0].split(b" ")
    return line[1].decode() if len(line) > 1 and data.startswith(b"HTTP/") else "closed"

def main():
    tmp = tempfile.mkdtemp()
    backend, lb, hap = free_port(), free_port(), free_port()
    procs = [subprocess.Popen(["target/debug/veza-demo-backend", "--listen", f"127.0.0.1:{backend}", "--name", "b1"], stdout=subprocess.DEVNULL)]
    with open(f"{tmp}/lb.toml", "w") as f:
        f.write(f'[[frontend]]\nname = "fe"\nbind = ["127.0.0.1:{lb}"]\ndefault_pool = "p"\n[pool.p]\nservers = [{{ name = "b1", addr = "127.0.0.1:{backend}" }}]\n')
    with open(f"{tmp}/haproxy.cfg", "w") as f:
        f.write(f"defaults\n  mode http\n  timeout connect 1s\n  timeout client 3s\n  timeout server 3s\nfrontend fe\n  bind 127.0.0.1:{hap}\n  default_backend p\nbackend p\n  server b1 127.0.0.1:{backend}\n")
    procs.append(subprocess.Popen(["target/debug/veza-lb", "-c", f"{tmp}/lb.toml", "--log-level", "error"]))
    procs.append(subprocess.Popen(["haproxy", "-q", "-f", f"{tmp}/haproxy.cfg"]))
    try:
        for p in (backend, lb, hap):
            wait_port(p)
        print("| case | veza-lb | HAProxy 2.6 |\n|---|---|---|")
        for what, raw in CASES:
            print(f"| {what} | {ask(lb, raw)} | {ask(hap, raw)} |")
    finally:
        for p in procs:
            p.terminate()

main()

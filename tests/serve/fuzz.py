#!/usr/bin/env python3
"""Fuzzes a running aibox-serve's request parsing for a while: random and
mutated HTTP requests (request lines, headers, lengths, chunking, multipart
forms, image bodies, truncation, stalls, garbage) from several threads; every
second a health request must answer 200. Prints one JSON line of counts and
exits 1 if the server stopped answering.

  python3 tests/serve/fuzz.py PORT SECONDS [IMAGE ...]
"""
import json
import random
import socket
import sys
import threading
import time

PORT, SECONDS = int(sys.argv[1]), float(sys.argv[2])
IMAGES = [open(p, "rb").read() for p in sys.argv[3:]] or [b"\xff\xd8\xff\xe0" + bytes(200)]
METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"P\x00ST", b"", b"GET GET", b"A" * 300]
PATHS = [b"/v1/infer", b"/v1/infer?name=a.jpg", b"/v1/infer?name=../../etc/passwd", b"/v1/health", b"/v1/model",
         b"/metrics", b"/", b"/static/index.html", b"/static/../../etc/passwd", b"/static/%2e%2e/x", b"/v1/model/reload",
         b"/%00", b"*", b"http://x/v1/infer", b"/" + b"a" * 5000, b"/v1/infer?name=" + b"%ff" * 100,
         # the operator loop's routes (aibox-serve --store)
         b"/v1/results", b"/v1/results?after=-99999999999999999999", b"/v1/results?after=x", b"/v1/queue",
         b"/v1/store", b"/v1/retrain", b"/v1/retrain/swap", b"/v1/samples/0/image.png", b"/v1/samples/0/overlay.png",
         b"/v1/samples/0/label", b"/v1/samples/-1/label", b"/v1/samples/99999999999999999999/image.png",
         b"/v1/samples/0/../../x", b"/v1/samples/", b"/v1/plots/current/results.png",
         b"/v1/plots/candidate/confusion.png", b"/v1/plots/../../etc/passwd", b"/v1/plots/current/../../x"]
CTYPES = [b"image/jpeg", b"image/png", b"application/octet-stream", b"multipart/form-data; boundary=B",
          b"multipart/form-data", b"multipart/form-data; boundary=", b"text/plain", b"", b"image/", b"\xff\xfe",
          b"application/json"]
stats = {"requests": 0, "answered": 0, "closed_without_answer": 0, "connect_failed": 0, "health_failures": 0}
by_status = {}
lock = threading.Lock()
stop_at = time.time() + SECONDS


def mutate(b, rng):
    b = bytearray(b)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if not b or op < 0.3:
            b[rng.randrange(len(b) + 1):rng.randrange(len(b) + 1)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op < 0.6:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.8:
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 64)]
        else:
            i = rng.randrange(len(b))
            b[i:i] = b[i:i + rng.randint(1, 64)] * rng.randint(1, 4)
    return bytes(b)


def body_for(ct, rng):
    img = rng.choice(IMAGES)
    if rng.random() < 0.4:
        img = mutate(img, rng)
    if ct.startswith(b"multipart"):
        name = rng.choice([b"a.jpg", b"../x.jpg", b"", b"\xff.jpg", b"a/b.jpg", b"x" * 400])
        parts = b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"" + name + b"\"\r\nContent-Type: image/jpeg\r\n\r\n" + img + b"\r\n"
        if rng.random() < 0.2:
            parts += parts
        body = parts + b"--B--\r\n"
        return mutate(body, rng) if rng.random() < 0.3 else body
    if ct == b"application/json":
        js = rng.choice([b'{"label": "scratches"}', b'{"label": 3}', b'{"label": "' + b"x" * 5000 + b'"}', b"{", b"[]",
                         b'{"label": "\\u0000"}', b'{"label": null}', b"\xff" * 64])
        return mutate(js, rng) if rng.random() < 0.3 else js
    return img


def request(rng):
    method, path, ct = rng.choice(METHODS), rng.choice(PATHS), rng.choice(CTYPES)
    if rng.random() < 0.5:
        method, path = b"POST", b"/v1/infer?name=f%d.jpg" % rng.randrange(1000)
    body = body_for(ct, rng) if method == b"POST" or rng.random() < 0.2 else b""
    head = [method + b" " + path + b" " + rng.choice([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"FOO", b""])]
    head.append(b"Host: x")
    head.append(b"Connection: close")
    if ct:
        head.append(b"Content-Type: " + ct)
    mode = rng.random()
    chunked = mode < 0.15
    if chunked:
        head.append(b"Transfer-Encoding: chunked")
    elif mode < 0.3:
        head.append(b"Content-Length: " + rng.choice([b"-1", b"99999999999999999999", b"abc", b"0", b"%d" % (len(body) + rng.randint(-50, 50)), b"1e3"]))
    else:
        head.append(b"Content-Length: %d" % len(body))
    for _ in range(rng.randint(0, 3)):
        head.append(rng.choice([b"X-" + bytes(rng.randrange(33, 127) for _ in range(10)) + b": v", b"Authorization: Bearer x",
                                b"Expect: 100-continue", b": empty", b"Bad header", b"X-Long: " + b"y" * rng.randint(100, 200000)]))
    raw = b"\r\n".join(head) + b"\r\n\r\n"
    if chunked:
        pos, out = 0, []
        while pos < len(body):
            n = rng.randint(1, 8192)
            out.append(b"%x\r\n" % n + body[pos:pos + n] + b"\r\n")
            pos += n
        raw += b"".join(out) + rng.choice([b"0\r\n\r\n", b"", b"zz\r\n"])
    else:
        raw += body
    if rng.random() < 0.25:
        raw = mutate(raw, rng)
    if rng.random() < 0.1:
        raw = raw[:rng.randrange(len(raw) + 1)]
    return raw


def one(rng):
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=15)
    except OSError:
        with lock:
            stats["connect_failed"] += 1
        return
    status = None
    try:
        raw = request(rng)
        if rng.random() < 0.03:  # a stall: half the request, a pause
            s.sendall(raw[:len(raw) // 2])
            time.sleep(rng.uniform(0.1, 3))
            raw = raw[len(raw) // 2:]
        s.sendall(raw)
        if rng.random() < 0.5:
            s.shutdown(socket.SHUT_WR)
        data = b""
        while len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.") and len(data) >= 12:
            status = int(data[9:12])
    except (OSError, ValueError):
        pass
    finally:
        s.close()
    with lock:
        stats["requests"] += 1
        if status is None:
            stats["closed_without_answer"] += 1
        else:
            stats["answered"] += 1
            by_status[status] = by_status.get(status, 0) + 1


def worker(seed):
    rng = random.Random(seed)
    while time.time() < stop_at:
        one(rng)


def health():
    try:
        s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            data += c
        s.close()
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
for t in threads:
    t.start()
checks = 0
while time.time() < stop_at:
    time.sleep(1)
    checks += 1
    if not health():
        stats["health_failures"] += 1
for t in threads:
    t.join()
up = health()
stats.update({"seconds": SECONDS, "health_checks": checks, "status": {str(k): v for k, v in sorted(by_status.items())},
              "server_alive": up})
print(json.dumps(stats))
sys.exit(0 if up and stats["health_failures"] == 0 else 1)

#!/usr/bin/env python3
"""N concurrent long-lived Anthropic SSE streams against one HTTP endpoint (gateway benchmark).

Opens N connections at once, each POSTs /v1/messages with "stream": true and asks the mock
provider (tests/gateway/mock_provider.mjs) for a paced stream (header x-mock-scenario: long L;
slow MS). Per stream it records the time to the first byte of the body (TTFB, from sending the
request) and the arrival time of every SSE event, then checks the stream: message_start first,
content_block_delta texts "w0 ", "w1 ", ... "w{L-1} " each once and in order, message_stop last
(a lost, duplicated or reordered event fails the stream). An event that arrives less than
MS/4 after the previous one counts as "merged" (the pacing was lost on the way).
Prints one JSON line: counts and TTFB / inter-event gap percentiles in ms.

Usage: gateway_streams.py HOST PORT N LONG SLOW_MS TIMEOUT_S [API_KEY]
"""
import asyncio
import json
import sys
import time


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


class Chunked:
    """Incremental HTTP/1.1 chunked-body decoder (or pass-through for identity bodies)."""

    def __init__(self, chunked):
        self.chunked = chunked
        self.buf = b""
        self.left = 0  # bytes left in the current chunk
        self.state = "size"
        self.done = False

    def feed(self, data):
        if not self.chunked:
            return data
        self.buf += data
        out = []
        while True:
            if self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.buf[:i].split(b";")[0], 16)
                self.buf = self.buf[i + 2:]
                if size == 0:
                    self.done = True
                    break
                self.left = size
                self.state = "data"
            elif self.state == "data":
                if not self.buf:
                    break
                take = self.buf[: self.left]
                out.append(take)
                self.buf = self.buf[len(take):]
                self.left -= len(take)
                if self.left == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buf) < 2:
                    break
                self.buf = self.buf[2:]
                self.state = "size"
        return b"".join(out)


async def one_stream(host, port, idx, long_n, slow_ms, key, res):
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True,
                       "messages": [{"role": "user", "content": "stream %d" % idx}]}).encode()
    req = (b"POST /v1/messages HTTP/1.1\r\nHost: %s:%d\r\ncontent-type: application/json\r\n"
           b"anthropic-version: 2023-06-01\r\nx-api-key: %s\r\n"
           b"x-mock-scenario: long %d; slow %d\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
           % (host.encode(), port, key.encode(), long_n, slow_ms, len(body))) + body
    r = {"ok": False, "ttfb": None, "gaps": [], "events": 0, "merged": 0, "err": None}
    res.append(r)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        r["err"] = "connect: %s" % e
        return
    t0 = time.monotonic()
    writer.write(req)
    await writer.drain()
    head = b""
    while b"\r\n\r\n" not in head:
        d = await reader.read(65536)
        if not d:
            r["err"] = "closed before headers"
            writer.close()
            return
        head += d
    hdr, rest = head.split(b"\r\n\r\n", 1)
    lines = hdr.decode("latin-1").split("\r\n")
    status = lines[0].split()[1] if len(lines[0].split()) > 1 else "?"
    if status != "200":
        r["err"] = "status %s" % status
        writer.close()
        return
    chunked = any(l.lower().startswith("transfer-encoding:") and "chunked" in l.lower()
                  for l in lines[1:])
    dec = Chunked(chunked)
    sse = b""
    names, deltas = [], []
    last = None
    first = True
    data = rest
    while True:
        now = time.monotonic()
        if data:
            if first:
                r["ttfb"] = (now - t0) * 1000.0
                first = False
            sse += dec.feed(data)
            while True:
                sse = sse.replace(b"\r\n", b"\n")
                i = sse.find(b"\n\n")
                if i < 0:
                    break
                ev, sse = sse[:i], sse[i + 2:]
                name, payload = None, None
                for line in ev.split(b"\n"):
                    if line.startswith(b"event:"):
                        name = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        payload = line[5:].strip()
                if name is None and payload is None:
                    continue
                names.append(name)
                if name == "content_block_delta":
                    try:
                        deltas.append(json.loads(payload)["delta"].get("text"))
                    except (ValueError, KeyError):
                        deltas.append(None)
                if last is not None:
                    gap = (now - last) * 1000.0
                    r["gaps"].append(gap)
                    if gap < slow_ms / 4.0:
                        r["merged"] += 1
                last = now
            if dec.done:
                break
        data = await reader.read(65536)
        if not data:
            break
    writer.close()
    r["events"] = len(names)
    want = ["w%d " % i for i in range(long_n)]
    if not names or names[0] != "message_start" or names[-1] != "message_stop":
        r["err"] = "bad start/end: %s..%s" % (names[:1], names[-1:])
    elif deltas != want:
        r["err"] = "deltas: %d of %d, in order: %s" % (len(deltas), long_n, deltas == want[: len(deltas)])
    else:
        r["ok"] = True


async def main():
    host, port, n, long_n, slow_ms, timeout = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                               int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    key = sys.argv[7] if len(sys.argv) > 7 else "-"
    res = []
    t0 = time.monotonic()
    tasks = [asyncio.create_task(one_stream(host, port, i, long_n, slow_ms, key, res)) for i in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    for t in done:
        if t.exception() is not None:
            res.append({"ok": False, "err": repr(t.exception()), "ttfb": None, "gaps": [],
                        "events": 0, "merged": 0})
    ok = [r for r in res if r["ok"]]
    ttfb = [r["ttfb"] for r in res if r["ttfb"] is not None]
    gaps = [g for r in ok for g in r["gaps"]]
    errs = {}
    for r in res:
        if r.get("err"):
            errs[r["err"][:60]] = errs.get(r["err"][:60], 0) + 1
    out = {"streams": n, "ok": len(ok), "failed": n - len(ok), "timed_out": len(pending),
           "events": sum(r["events"] for r in res), "merged": sum(r["merged"] for r in res),
           "ttfb_p50": pct(ttfb, 50), "ttfb_p99": pct(ttfb, 99), "gap_p50": pct(gaps, 50),
           "gap_p99": pct(gaps, 99), "wall_s": time.monotonic() - t0, "errors": errs}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())

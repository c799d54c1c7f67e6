#!/usr/bin/env python3
"""Raw MSRP for tests/hostile/test_msrp_hostile.sh.

    msrp_raw.py --path WORKER_LEG_PATH [--wait S] CASE [ARG...]

WORKER_LEG_PATH is the msrp:// URI the worker put in the CP's 200 for a
client leg (the leg is named by its session id, the last path segment);
the cases connect to its host:port. Each case prints "key=value" lines:
resp=CODE for every per-hop response read (resp=none if none came within
the wait), closed=1 after_ms=N when the worker closed the connection (or
closed=0 when it was still open at the end of the wait). Every wait is
bounded. `msrp_raw.py list` names the cases (the case_* functions).
"""
import argparse
import random
import re
import socket
import sys
import time

CRLF = "\r\n"


def tid():
    return "t%010x" % random.getrandbits(40)


class Conn:
    def __init__(self, path, wait):
        m = re.match(r"msrp://([^:/]+):(\d+)/([^;]+);tcp", path)
        if not m:
            sys.exit("bad path " + path)
        self.host, self.port, self.sid = m.group(1), int(m.group(2)), m.group(3)
        self.path = path
        self.wait = wait
        self.sock = socket.create_connection((self.host, self.port), timeout=wait)
        self.me = "msrp://127.0.0.1:%d/hostile%06x;tcp" % (
            self.sock.getsockname()[1], random.getrandbits(24))
        self.buf = b""
        self.closed = False
        self.t0 = time.monotonic()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def read(self, secs):
        """Reads for up to secs; False once the peer closed."""
        deadline = time.monotonic() + secs
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return True
            except OSError:
                d = b""
            if not d:
                self.closed = True
                self.closed_at = time.monotonic()
                return False
            self.buf += d
            if self.responses_ready():
                return True
        return False

    def responses_ready(self):
        return re.search(rb"-------\S+[$#+]\r\n", self.buf) is not None

    def take_responses(self):
        out = []
        while True:
            m = re.match(rb"MSRP (\S+) (\d{3})[^\r]*\r\n(.*?)-------\1([$#+])\r\n",
                         self.buf, re.S)
            if not m:
                m2 = re.match(rb"MSRP (\S+) ([A-Z]+)\r\n(.*?)-------\1([$#+])\r\n",
                              self.buf, re.S)
                if not m2:
                    return out
                out.append(("req", m2.group(2).decode()))
                self.buf = self.buf[m2.end():]
                continue
            out.append(("resp", int(m.group(2))))
            self.buf = self.buf[m.end():]

    def expect_resp(self, secs=None):
        """Reads until a response (or close); prints resp=..."""
        deadline = time.monotonic() + (self.wait if secs is None else secs)
        while True:
            got = [c for k, c in self.take_responses() if k == "resp"]
            if got:
                for c in got:
                    print("resp=%d" % c)
                return got[0]
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                print("resp=none")
                return None
            self.read(left)

    def expect_close(self, secs):
        deadline = time.monotonic() + secs
        while not self.closed and time.monotonic() < deadline:
            self.read(deadline - time.monotonic())
            self.take_responses()
        if self.closed:
            print("closed=1 after_ms=%d" % ((self.closed_at - self.t0) * 1000))
        else:
            print("closed=0")

    def close(self):
        self.sock.close()


def send_req(to_path, from_path, t=None, body=None, flag="$", extra=(),
             byte_range=None, method="SEND", mid=None):
    t = t or tid()
    lines = ["MSRP %s %s" % (t, method), "To-Path: " + to_path,
             "From-Path: " + from_path,
             "Message-ID: " + (mid or "m%08x" % random.getrandbits(32))]
    if byte_range is not None:
        lines.append("Byte-Range: " + byte_range)
    lines += list(extra)
    if body is None:
        return CRLF.join(lines) + CRLF + "-------" + t + flag + CRLF
    lines.append("Content-Type: text/plain")
    return CRLF.join(lines) + CRLF + CRLF + body + CRLF + "-------" + t + flag + CRLF


def bind(c):
    """A proper empty first SEND: the leg takes the connection."""
    c.send(send_req(c.path, c.me))
    return c.expect_resp()


# ---- unbound connections: the first frame is bad -------------------------

def case_unknown_session(c, a):
    c.send(send_req("msrp://%s:%d/nosuchsession;tcp" % (c.host, c.port), c.me))
    c.expect_resp()
    c.expect_close(4)


def case_foreign_last_hop(c, a):
    # A To-Path through the worker to another host: no relaying there.
    c.send(send_req(c.path + " msrp://192.0.2.1:2855/elsewhere;tcp", c.me))
    c.expect_resp()
    c.expect_close(4)


def case_bad_to_path(c, a):
    c.send(send_req("http://example.com/x", c.me))
    c.expect_resp()
    c.expect_close(4)


def case_first_not_send(c, a):
    c.send(send_req(c.path, c.me, method="REPORT", extra=["Status: 000 200 OK"]))
    c.expect_close(4)


def case_first_is_response(c, a):
    t = tid()
    c.send("MSRP %s 200 OK%sTo-Path: %s%sFrom-Path: %s%s-------%s$%s" % (
        t, CRLF, c.path, CRLF, c.me, CRLF, t, CRLF))
    c.expect_close(4)


def case_garbage(c, a):
    c.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\xff" * 64)
    c.expect_close(4)


def case_huge_range_unbound(c, a):
    c.send(send_req(c.path, c.me, body="x",
                    byte_range="1-99999999999999999999999/99999999999999999999999"))
    c.expect_resp(1)
    c.expect_close(4)


def case_negative_range_unbound(c, a):
    c.send(send_req(c.path, c.me, body="x", byte_range="-5-10/20"))
    c.expect_resp(1)
    c.expect_close(4)


def case_bad_flag_unbound(c, a):
    c.send(send_req(c.path, c.me, flag="?"))
    c.expect_resp(1)
    c.expect_close(4)


def case_tid_mismatch_unbound(c, a):
    t = tid()
    text = send_req(c.path, c.me, t=t).replace("-------" + t, "-------" + tid())
    c.send(text)
    c.expect_resp(1)
    c.expect_close(4)


def case_header_flood_unbound(c, a):
    t = tid()
    c.send("MSRP %s SEND%sTo-Path: %s%s" % (t, CRLF, c.path, CRLF) +
           ("X-Pad: " + "p" * 100 + CRLF) * 60)
    c.expect_close(4)


def case_silent(c, a):
    # Connects and never sends its first SEND.
    c.expect_close(float(a[0]) if a else 15)


def case_slowloris_unbound(c, a):
    # The first SEND, one byte a second (a[0] seconds at most).
    secs = float(a[0]) if a else 15
    text = send_req(c.path, c.me)
    deadline = time.monotonic() + secs
    for ch in text:
        if c.closed or time.monotonic() >= deadline:
            break
        c.send(ch)
        c.read(1.0)
    c.take_responses()
    if c.closed:
        print("closed=1 after_ms=%d" % ((c.closed_at - c.t0) * 1000))
    else:
        print("closed=0")


# ---- bound connections: bind, then misbehave ------------------------------

def case_bind_close(c, a):
    """Binds the leg and hangs up: the session ends (LegEvent)."""
    bind(c)
    c.close()


def case_huge_range_bound(c, a):
    bind(c)
    c.send(send_req(c.path, c.me, body="x",
                    byte_range="1-99999999999999999999999/*"))
    c.expect_resp(2)
    c.expect_close(4)


def case_negative_range_bound(c, a):
    bind(c)
    c.send(send_req(c.path, c.me, body="x", byte_range="1--5/20"))
    c.expect_resp(2)
    c.expect_close(4)


def case_big_range_bound(c, a):
    # A well-formed Byte-Range far past --max-msg: 413, connection kept.
    bind(c)
    c.send(send_req(c.path, c.me, body="x",
                    byte_range="1-999999999999999999/999999999999999999"))
    c.expect_resp(3)
    c.send(send_req(c.path, c.me))  # still usable
    c.expect_resp(3)
    c.close()


def case_bad_flag_bound(c, a):
    bind(c)
    c.send(send_req(c.path, c.me, flag="?"))
    c.expect_resp(2)
    c.expect_close(4)


def case_tid_mismatch_bound(c, a):
    bind(c)
    t = tid()
    c.send(send_req(c.path, c.me, t=t).replace("-------" + t, "-------" + tid()))
    c.expect_resp(2)
    c.expect_close(4)


def case_other_session_bound(c, a):
    # A SEND on a bound connection naming another session: 481 per hop;
    # an unknown method: 501; the connection stays.
    bind(c)
    c.send(send_req("msrp://%s:%d/notthisone;tcp" % (c.host, c.port), c.me))
    c.expect_resp(3)
    c.send(send_req(c.path, c.me, method="FROB"))
    c.expect_resp(3)
    c.send(send_req(c.path, c.me))
    c.expect_resp(3)
    c.close()


def case_never_ending_chunk(c, a):
    # A chunk whose end-line never comes (a wrong transaction id in it is
    # content): the worker closes the connection once the body passes
    # --max-msg plus its slack, or the leg goes idle.
    n = int(a[0]) if a else 0
    secs = float(a[1]) if len(a) > 1 else 10
    bind(c)
    t = tid()
    head = CRLF.join(["MSRP %s SEND" % t, "To-Path: " + c.path, "From-Path: " + c.me,
                      "Message-ID: mNEVER", "Byte-Range: 1-*/*",
                      "Content-Type: text/plain"]) + CRLF + CRLF
    c.send(head + "body" + CRLF + "-------" + tid() + "$" + CRLF)
    block = ("z" * 1023 + "\n") * 64
    sent = 0
    while sent < n and not c.closed:
        c.send(block)
        sent += len(block)
        c.read(0)
    c.expect_close(secs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--path")
    ap.add_argument("--wait", type=float, default=3.0)
    ap.add_argument("case")
    ap.add_argument("args", nargs="*")
    o = ap.parse_args()
    if o.case == "list":
        print(" ".join(n[5:] for n in sorted(globals()) if n.startswith("case_")))
        return 0
    fn = globals().get("case_" + o.case)
    if not fn:
        sys.exit("unknown case " + o.case)
    fn(Conn(o.path, o.wait), o.args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

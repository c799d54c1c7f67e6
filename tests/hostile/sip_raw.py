#!/usr/bin/env python3
"""Raw SIP for tests/hostile/test_sip_hostile.sh.

    sip_raw.py --cp HOST:PORT --outdir DIR NAME=TRANSPORT:CASE[:WAIT[:ARG...]]...

Runs each case in turn: sends hand-made SIP messages to the CP over
TRANSPORT (udp|tcp) and writes what came back to DIR/NAME.out, one
"key=value" line per item of a final response (status=, min_se=,
warning=), or "status=none" when nothing came within the wait. Every wait
is bounded (WAIT seconds per response, default --wait, 3). An INVITE's non-2xx final
response is ACKed; a 2xx is ACKed and the session ended with a BYE (the
BYE's answer is printed as bye_status=). Cases are the functions named
case_* below; `sip_raw.py list` names them.
"""
import argparse
import random
import re
import socket
import sys
import time

CRLF = "\r\n"


class Conn:
    def __init__(self, transport, cp, wait):
        self.transport = transport
        self.host, port = cp.rsplit(":", 1)
        self.port = int(port)
        self.wait = wait
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            self.sock = socket.create_connection((self.host, self.port), timeout=wait)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.closed = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        if self.transport == "udp":
            self.sock.sendto(data, (self.host, self.port))
        else:
            self.sock.sendall(data)

    def _read_more(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or self.closed:
            return False
        self.sock.settimeout(left)
        try:
            if self.transport == "udp":
                data, _ = self.sock.recvfrom(65536)
                self.buf += data
                self.buf += b"\0DGRAM\0"
                return True
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def recv_msg(self, wait=None):
        """The next SIP message (start line, headers dict of lists, body)."""
        deadline = time.monotonic() + (self.wait if wait is None else wait)
        while True:
            if self.transport == "udp":
                i = self.buf.find(b"\0DGRAM\0")
                if i >= 0:
                    raw, self.buf = self.buf[:i], self.buf[i + 7:]
                    return parse(raw)
            else:
                i = self.buf.find(b"\r\n\r\n")
                if i >= 0:
                    head = parse(self.buf[:i + 4])
                    cl = int(head[1].get("content-length", ["0"])[0] or 0)
                    if len(self.buf) >= i + 4 + cl:
                        raw = self.buf[:i + 4 + cl]
                        self.buf = self.buf[i + 4 + cl:]
                        return parse(raw)
            if not self._read_more(deadline):
                return None


COMPACT = {"l": "content-length", "i": "call-id", "f": "from", "t": "to",
           "v": "via", "m": "contact", "c": "content-type", "x": "session-expires"}


def parse(raw):
    text = raw.decode("latin-1")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        k = k.strip().lower()
        k = COMPACT.get(k, k)
        hdrs.setdefault(k, []).append(v.strip())
    return lines[0], hdrs, body


def status_of(msg):
    m = re.match(r"SIP/2.0 (\d{3})", msg[0]) if msg else None
    return int(m.group(1)) if m else None


def sdp(path="msrp://127.0.0.1:2855/hostile;tcp", mline="m=message 2855 TCP/MSRP *",
        extra=""):
    lines = ["v=0", "o=h 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1",
             "t=0 0", mline, "a=accept-types:text/plain"]
    if path:
        lines.append("a=path:" + path)
    lines.append("a=setup:active")
    if extra:
        lines.append(extra)
    return CRLF.join(lines) + CRLF


class Call:
    """One client dialog built by hand."""

    def __init__(self, conn):
        self.c = conn
        tp = "TCP" if conn.transport == "tcp" else "UDP"
        self.via_proto = "SIP/2.0/" + tp
        self.call_id = "hostile-%08x@127.0.0.1" % random.getrandbits(32)
        self.from_tag = "h%06x" % random.getrandbits(24)
        self.to_tag = None
        self.cseq = 1
        self.ruri = "sip:conf@%s:%d" % (conn.host, conn.port)
        self.remote_target = self.ruri
        self.contact = "<sip:alice@127.0.0.1:%d;transport=%s>" % (
            conn.local_port, conn.transport)

    def branch(self):
        return "z9hG4bK-h%08x" % random.getrandbits(32)

    def request(self, method, headers=(), body="", ctype="application/sdp",
                cseq=None, branch=None, ruri=None, to_tag=None, length=None):
        to = "<sip:conf@%s>" % self.c.host
        tag = self.to_tag if to_tag is None else to_tag
        if tag:
            to += ";tag=" + tag
        lines = [
            "%s %s SIP/2.0" % (method, ruri or (self.remote_target if self.to_tag else self.ruri)),
            "Via: %s 127.0.0.1:%d;rport;branch=%s" % (self.via_proto, self.c.local_port,
                                                    branch or self.branch()),
            "Max-Forwards: 70",
            "From: <sip:alice@127.0.0.1>;tag=" + self.from_tag,
            "To: " + to,
            "Call-ID: " + self.call_id,
            "CSeq: %d %s" % (self.cseq if cseq is None else cseq,
                             "ACK" if method == "ACK" else method),
            "Contact: " + self.contact,
        ]
        lines += list(headers)
        if body:
            lines.append("Content-Type: " + ctype)
        lines.append("Content-Length: %d" % (len(body.encode("latin-1"))
                                            if length is None else length))
        return CRLF.join(lines) + CRLF + CRLF + body

    def final(self, wait=None):
        """Waits for a final response (provisional ones skipped)."""
        deadline = time.monotonic() + (self.c.wait if wait is None else wait)
        while True:
            m = self.c.recv_msg(max(0.0, deadline - time.monotonic()))
            if m is None:
                return None
            st = status_of(m)
            if st is not None and st >= 200:
                return m

    def invite(self, headers=(), body=None, ctype="application/sdp", end=True,
               wait=None):
        """INVITE; ACKs the final answer; ends an established call with
        BYE when `end`. Returns the final response (or None)."""
        body = sdp() if body is None else body
        br = self.branch()
        self.c.send(self.request("INVITE", headers, body, ctype, branch=br))
        resp = self.final(wait)
        if resp is None:
            return None
        st = status_of(resp)
        to = resp[1].get("to", [""])[0]
        m = re.search(r";\s*tag=([^;>\s]+)", to)
        if st >= 300:
            # Non-2xx ACK: same branch, the response's To.
            self.c.send(self.request("ACK", branch=br, ruri=self.ruri,
                                     to_tag=m.group(1) if m else ""))
            return resp
        self.to_tag = m.group(1) if m else ""
        ct = resp[1].get("contact", [""])[0]
        mm = re.search(r"<([^>]+)>", ct)
        if mm:
            self.remote_target = mm.group(1)
        self.c.send(self.request("ACK"))
        if end:
            self.bye()
        return resp

    def bye(self):
        self.cseq += 1
        self.c.send(self.request("BYE"))
        r = self.final()
        print("bye_status=%s" % (status_of(r) if r else "none"))
        return r


def report(resp, prefix=""):
    if resp is None:
        print(prefix + "status=none")
        return
    h = resp[1]
    print(prefix + "status=%s" % status_of(resp))
    for k in ("min-se", "session-expires", "warning", "require", "retry-after"):
        if k in h:
            print(prefix + "%s=%s" % (k.replace("-", "_"), ",".join(h[k])))
    if resp[2]:
        m = re.search(r"a=path:(\S+)", resp[2])
        if m:
            print(prefix + "path=" + m.group(1))


# ---- cases -----------------------------------------------------------------

def case_se_below_min(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: 5"]))


def case_se_zero(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: 0"]))


def case_se_huge(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: 99999999999"]))


def case_se_huge_digits(c, a):
    report(Call(c).invite(["Supported: timer",
                           "Session-Expires: 999999999999999999999999999999"]))


def case_se_repeated(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: 20",
                           "Session-Expires: 5"]))


def case_se_malformed(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: soon;refresher=me"]))


def case_se_bad_refresher(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: 20;refresher=both"]))


def case_min_se_above_se(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: 20", "Min-SE: 25"]))


def case_min_se_huge(c, a):
    report(Call(c).invite(["Supported: timer", "Session-Expires: 20",
                           "Min-SE: 4294967296"]))


def case_no_sdp(c, a):
    report(Call(c).invite(["Supported: timer"], body=""))


def case_wrong_content_type(c, a):
    report(Call(c).invite(["Supported: timer"], body="hello" + CRLF, ctype="text/plain"))


def case_audio_mline(c, a):
    report(Call(c).invite(["Supported: timer"],
                          body=sdp(mline="m=audio 49170 RTP/AVP 0", path=None)))


def case_no_path(c, a):
    report(Call(c).invite(["Supported: timer"], body=sdp(path=None)))


def case_garbage_sdp(c, a):
    report(Call(c).invite(["Supported: timer"], body="\x01\x02 not sdp at all\r\n"))


def case_bye_unknown(c, a):
    call = Call(c)
    call.to_tag = "nosuchtag"
    call.c.send(call.request("BYE"))
    report(call.final())


def case_update_unknown(c, a):
    call = Call(c)
    call.to_tag = "nosuchtag"
    call.c.send(call.request("UPDATE", ["Supported: timer", "Session-Expires: 20"]))
    report(call.final())


def case_reinvite_unknown(c, a):
    call = Call(c)
    call.to_tag = "nosuchtag"
    call.c.send(call.request("INVITE", ["Supported: timer"], sdp()))
    r = call.final()
    report(r)
    if r is not None and status_of(r) >= 300:
        call.c.send(call.request("ACK"))


def _established(c):
    call = Call(c)
    r = call.invite(["Supported: timer", "Session-Expires: 20"], end=False,
                    wait=max(c.wait, 5))
    if r is None or status_of(r) != 200:
        report(r, "invite_")
        return None
    return call


def _reinvite(call, body):
    call.cseq += 1
    br = call.branch()
    call.c.send(call.request("INVITE", ["Supported: timer", "Session-Expires: 20"],
                             body, branch=br))
    r = call.final()
    report(r, "reinvite_")
    if r is not None:
        if status_of(r) < 300:
            call.c.send(call.request("ACK"))
        else:
            call.c.send(call.request("ACK", branch=br))
    return r


def case_reinvite_path_changed(c, a):
    call = _established(c)
    if call:
        _reinvite(call, sdp(path="msrp://127.0.0.1:2999/changed;tcp"))
        call.bye()


def case_reinvite_path_missing(c, a):
    call = _established(c)
    if call:
        _reinvite(call, sdp(path=None))
        call.bye()


def case_reinvite_audio(c, a):
    call = _established(c)
    if call:
        _reinvite(call, sdp(mline="m=audio 49170 RTP/AVP 0", path=None))
        call.bye()


def case_update_se_below_min(c, a):
    call = _established(c)
    if call:
        call.cseq += 1
        call.c.send(call.request("UPDATE", ["Supported: timer", "Session-Expires: 3"]))
        report(call.final(), "update_")
        call.bye()


# RFC 4475-style torture messages: sent as they are (no dialog follows).

def _torture(c, text):
    text = text.replace("@PORT@", str(c.local_port)).replace("@PROTO@", c.transport.upper())
    c.send(text)
    m = None
    deadline = time.monotonic() + c.wait
    while True:
        m = c.recv_msg(max(0.0, deadline - time.monotonic()))
        if m is None or (status_of(m) or 0) >= 200:
            break
    report(m)
    if m is not None and status_of(m) < 300 and text.startswith("INVITE"):
        _end_accepted(c, text, m)


def _end_accepted(c, text, resp):
    """ACK and BYE for a hand-made INVITE the CP accepted."""
    sent = parse(text.encode("latin-1"))[1]
    call = Call(c)
    call.call_id = sent["call-id"][0]
    call.from_tag = re.search(r"tag=([^;>\s]+)", sent["from"][0]).group(1)
    m = re.search(r";\s*tag=([^;>\s]+)", resp[1].get("to", [""])[0])
    call.to_tag = m.group(1) if m else ""
    mm = re.search(r"<([^>]+)>", resp[1].get("contact", [""])[0])
    if mm:
        call.remote_target = mm.group(1)
    c.send(call.request("ACK"))
    call.bye()


def _inv(extra_headers, body, cl=None, ruri="sip:conf@127.0.0.1", to="<sip:conf@127.0.0.1>"):
    length = len(body.encode("latin-1")) if cl is None else cl
    h = ["INVITE %s SIP/2.0" % ruri,
         "Via: SIP/2.0/@PROTO@ 127.0.0.1:@PORT@;rport;branch=z9hG4bK-t%08x" % random.getrandbits(32),
         "Max-Forwards: 70",
         "From: <sip:alice@127.0.0.1>;tag=t%06x" % random.getrandbits(24),
         "To: " + to,
         "Call-ID: torture-%08x" % random.getrandbits(32),
         "CSeq: 1 INVITE",
         "Contact: <sip:alice@127.0.0.1:@PORT@>",
         "Supported: timer"]
    h += extra_headers
    if isinstance(length, str):
        h.append(length)
    else:
        h.append("Content-Length: %d" % length)
    return CRLF.join(h) + CRLF + CRLF + body


def _sdp_hdr():
    return ["Content-Type: application/sdp"]


def case_cl_too_big(c, a):
    # RFC 4475 3.1.2.7 (clerr): Content-Length larger than the body.
    _torture(c, _inv(_sdp_hdr(), sdp(), cl=len(sdp()) + 500))


def case_cl_huge(c, a):
    # Content-Length far beyond anything a transport carries.
    _torture(c, _inv(_sdp_hdr(), sdp(), cl="Content-Length: 99999999999999999999"))


def case_cl_negative(c, a):
    # RFC 4475 3.1.2.2 (ncl): a negative Content-Length.
    _torture(c, _inv(_sdp_hdr(), sdp(), cl="Content-Length: -999"))


def case_cl_multiple(c, a):
    # RFC 4475 3.1.2.4 (multi01 family): two differing Content-Lengths.
    body = sdp()
    _torture(c, _inv(_sdp_hdr() + ["Content-Length: 3"], body))


def case_unterminated(c, a):
    # Headers with no blank line: nothing may come of it.
    text = _inv(_sdp_hdr(), "")
    _torture(c, text[:-4] + CRLF)


def case_escaped_ruri(c, a):
    # RFC 4475 3.1.1.5 (esc01) and 3.1.1.6 (escnull): escapes in the
    # Request-URI and a %00 in the To user part.
    _torture(c, _inv(_sdp_hdr(), sdp(),
                     ruri="sip:sips%3Auser%40example.com@127.0.0.1;other=%23x",
                     to="<sip:null-%00-null@127.0.0.1>"))


def case_ltgt_ruri(c, a):
    # RFC 4475 3.1.2.10 (ltgtruri): Request-URI in angle brackets.
    _torture(c, _inv(_sdp_hdr(), sdp(), ruri="<sip:conf@127.0.0.1>"))


def case_bad_ruri_scheme(c, a):
    # RFC 4475 3.1.2.14-ish: an unknown scheme and odd characters.
    _torture(c, _inv(_sdp_hdr(), sdp(), ruri="nope:%%%@@@::"))


def case_bad_cseq(c, a):
    # RFC 4475 3.1.2.8 (cseqmismatch family): CSeq method differs.
    _torture(c, _inv(_sdp_hdr(), sdp()).replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS"))


def case_long_header(c, a):
    # RFC 4475 3.1.1.11 (longreq): one very long header value.
    _torture(c, _inv(_sdp_hdr() + ["X-Long: " + "a" * 30000], sdp()))


def case_oversize(c, a):
    # A request bigger than NTA's default message limit (2 MiB on TCP;
    # over UDP the largest datagram the test can send).
    n = int(a[0]) if a else 3 * 1024 * 1024
    body = sdp() + "a=x-pad:" + "p" * n + CRLF
    text = _inv(_sdp_hdr(), body)
    try:
        _torture(c, text)
    except OSError as e:
        print("send_error=%s" % e.__class__.__name__)
        report(None)


def case_garbage(c, a):
    _torture(c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\xff" * 200 + CRLF + CRLF)


def run_spec(cp, wait, outdir, spec):
    """NAME=TRANSPORT:CASE[:WAIT[:ARG...]]: runs one case, its lines to
    OUTDIR/NAME.out."""
    name, _, rest = spec.partition("=")
    parts = rest.split(":")
    tp, case = parts[0], parts[1]
    w = float(parts[2]) if len(parts) > 2 and parts[2] else wait
    fn = globals().get("case_" + case)
    if not fn:
        sys.exit("unknown case " + case)
    out = sys.stdout
    with open("%s/%s.out" % (outdir, name), "w") as f:
        sys.stdout = f
        try:
            fn(Conn(tp, cp, w), parts[3:])
        finally:
            sys.stdout = out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cp", default="127.0.0.1:5060")
    ap.add_argument("--wait", type=float, default=3.0)
    ap.add_argument("--outdir", default=".")
    ap.add_argument("specs", nargs="+",
                    help="NAME=TRANSPORT:CASE[:WAIT[:ARG...]], or 'list'")
    o = ap.parse_args()
    if o.specs == ["list"]:
        print(" ".join(n[5:] for n in sorted(globals()) if n.startswith("case_")))
        return 0
    for spec in o.specs:
        run_spec(o.cp, o.wait, o.outdir, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())

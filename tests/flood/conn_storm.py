"""Opens COUNT TCP connections to HOST:PORT as fast as it can and keeps
them silent, for the MSRP connection-storm tests.

usage: conn_storm.py HOST PORT COUNT RELEASE_FILE MAX_HOLD_S

Raises its own descriptor limit (soft, up to the hard one) to fit COUNT.
Prints "opened=N failed=F elapsed_ms=T" once every connect was tried, then
holds the connections until RELEASE_FILE exists (at most MAX_HOLD_S), then
prints "closed_by_peer=C open=O" (how many the far side had closed by then)
and closes them all. Exit 0; 2 when the limit cannot be raised enough.
"""
import errno
import os
import resource
import socket
import sys
import time


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    release, max_hold = sys.argv[4], float(sys.argv[5])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = count + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            print("fd limit %d below %d" % (hard, need), flush=True)
            return 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    socks, failed = [], 0
    t0 = time.monotonic()
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect((host, port))
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
    print("opened=%d failed=%d elapsed_ms=%d"
          % (len(socks), failed, (time.monotonic() - t0) * 1000), flush=True)
    deadline = time.monotonic() + max_hold
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno in (errno.ECONNRESET, errno.EPIPE):
                closed += 1
    print("closed_by_peer=%d open=%d" % (closed, len(socks) - closed), flush=True)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

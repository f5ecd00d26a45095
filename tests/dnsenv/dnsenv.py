"""tests/dnsenv/dnsenv.py: the test DNS environment from Python.

    import dnsenv
    env = dnsenv.start(tmpdir)   # runs dnsenv.sh start DIR, returns env.sh as a dict
    try:
        rcode, answers, ttl = dnsenv.query(env["DNS_FRONT"], "2.0.0.127.bl.kanjiki.test", "A")
        assert (rcode, answers) == ("NOERROR", ["127.0.0.2"])
    finally:
        dnsenv.stop(tmpdir)      # runs dnsenv.sh stop DIR

query(server, name, qtype) is a minimal stub resolver built on the socket
module only (no dnspython here): one question, RD set, UDP with a retry on
TCP when the answer is truncated.  It returns (rcode, answers, ttl):

  rcode    "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR",
           "NOTIMP", "RCODE<n>" for others, or "TIMEOUT" when no answer came
           within `timeout` seconds (then answers == [] and ttl is None);
           over TCP also "CLOSED" (connection closed without an answer)
           and "CONNREFUSED"
  answers  the answer-section records of type qtype as text (CNAMEs that
           lead to them are left out): A/AAAA the address, TXT the
           character-strings joined without separator, PTR/CNAME/NS the name
           (no trailing dot), MX "PREF NAME", SOA "MNAME RNAME SERIAL
           REFRESH RETRY EXPIRE MINIMUM", anything else "\\# LEN HEX"
  ttl      the smallest TTL of those answers; for an answer without them
           (NXDOMAIN / NODATA) the negative TTL RFC 2308 gives from the SOA in
           the authority section (min(SOA TTL, SOA MINIMUM)), or None when
           there is no SOA

query_full(...) returns a dict with everything (flags, all sections, the
elapsed time) for tests that need more.

The names and what they answer: the comment at the top of dnsenv.sh.

Command line:  python3 dnsenv.py query 127.0.0.1:PORT NAME [TYPE] [TIMEOUT]
               python3 dnsenv.py start DIR | stop DIR
  used by dnsenv.sh:
               python3 dnsenv.py freeport
               python3 dnsenv.py wait SERVER NAME TYPE ANSWER|rcode=RCODE SECONDS
               python3 dnsenv.py deadserver PORTFILE LOGFILE
"""

import os
import random
import shlex
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "dnsenv.sh")

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15,
          "TXT": 16, "AAAA": 28, "SRV": 33, "OPT": 41, "ANY": 255}
QTYPE_NAMES = {v: k for k, v in QTYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN",
          4: "NOTIMP", 5: "REFUSED"}


# ------------------------------------------------------------ environment

def parse_env(path):
    """env.sh (KEY='value' lines) as a dict."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):]
            for tok in shlex.split(line):
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    env[k] = v
    return env


def start(directory, check=True):
    """Start the environment with its state in `directory` (created if
    needed); return env.sh as a dict (DNS_FRONT, DNS_RBL, DNS_DEAD, ...).
    Raises RuntimeError (with the script's output) when it does not come up;
    the script has then stopped whatever it had started."""
    os.makedirs(directory, exist_ok=True)
    p = subprocess.run(["sh", SCRIPT, "start", directory],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        if check:
            raise RuntimeError("dnsenv.sh start %s failed (exit %d):\n%s"
                               % (directory, p.returncode, p.stdout))
        return None
    return parse_env(os.path.join(directory, "env.sh"))


def stop(directory):
    """Stop everything `start(directory)` started.  Safe to call twice or
    after a failed start.  Returns the script's exit status (0: nothing
    left running)."""
    p = subprocess.run(["sh", SCRIPT, "stop", directory],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout)
    return p.returncode


# ------------------------------------------------------------ DNS client

def _server(server):
    if isinstance(server, (tuple, list)):
        return str(server[0]), int(server[1])
    s = str(server)
    if s.startswith("["):                       # [::1]:53
        host, _, port = s[1:].partition("]:")
        return host, int(port or 53)
    if s.count(":") == 1:
        host, port = s.split(":")
        return host, int(port)
    return s, 53


def _encode_name(name):
    out = b""
    name = name.rstrip(".")
    if name:
        for label in name.split("."):
            b = label.encode("idna") if any(ord(c) > 127 for c in label) else label.encode()
            if not 0 < len(b) < 64:
                raise ValueError("bad label in %r" % name)
            out += bytes([len(b)]) + b
    return out + b"\0"


def _decode_name(msg, off):
    labels, jumped, end, hops = [], False, off, 0
    while True:
        if off >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if not jumped:
                end = off + 2
            jumped, off, hops = True, ptr, hops + 1
            if hops > 64:
                raise ValueError("compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("latin-1"))
        off += n
    return ".".join(labels), (end if jumped else off)


def _rdata_text(msg, rtype, off, rdlen):
    rd = msg[off:off + rdlen]
    if rtype == 1 and rdlen == 4:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rtype == 28 and rdlen == 16:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rtype == 16:
        parts, i = [], 0
        while i < rdlen:
            n = rd[i]
            parts.append(rd[i + 1:i + 1 + n].decode("utf-8", "replace"))
            i += 1 + n
        return "".join(parts)
    if rtype in (2, 5, 12):
        return _decode_name(msg, off)[0]
    if rtype == 15:
        pref = struct.unpack("!H", rd[:2])[0]
        return "%d %s" % (pref, _decode_name(msg, off + 2)[0])
    if rtype == 6:
        mname, o = _decode_name(msg, off)
        rname, o = _decode_name(msg, o)
        nums = struct.unpack("!5I", msg[o:o + 20])
        return "%s %s %d %d %d %d %d" % ((mname, rname) + nums)
    return "\\# %d %s" % (rdlen, rd.hex())


def _parse(msg):
    if len(msg) < 12:
        raise ValueError("short DNS message")
    qid, flags, qd, an, ns, ar = struct.unpack("!6H", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _decode_name(msg, off)
        off += 4
    sections = []
    for count in (an, ns, ar):
        recs = []
        for _ in range(count):
            name, off = _decode_name(msg, off)
            rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10
            recs.append({"name": name, "type": QTYPE_NAMES.get(rtype, str(rtype)),
                         "class": rclass, "ttl": ttl,
                         "data": _rdata_text(msg, rtype, off, rdlen)})
            off += rdlen
        sections.append(recs)
    return {"id": qid, "flags": flags, "rcode_num": flags & 0xF,
            "rcode": RCODES.get(flags & 0xF, "RCODE%d" % (flags & 0xF)),
            "aa": bool(flags & 0x400), "tc": bool(flags & 0x200),
            "ra": bool(flags & 0x80),
            "answer": sections[0], "authority": sections[1],
            "additional": sections[2]}


class _Closed(Exception):
    pass


def _recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise _Closed()
        buf += chunk
    return buf


def _noreply(why, t0):
    return {"rcode": why, "rcode_num": None, "answer": [], "authority": [],
            "additional": [], "aa": False, "tc": False, "ra": False,
            "elapsed": time.monotonic() - t0}


def query_full(server, name, qtype="A", timeout=2.0, tcp=False, rd=True):
    """One query; a dict with rcode, aa/tc/ra, answer/authority/additional
    (lists of {name,type,class,ttl,data}), elapsed (seconds), or rcode
    "TIMEOUT" when nothing (valid) came back within `timeout` ("CLOSED",
    "CONNREFUSED" over TCP)."""
    host, port = _server(server)
    qt = QTYPES[qtype.upper()] if isinstance(qtype, str) else int(qtype)
    qid = random.randint(0, 0xFFFF)
    pkt = struct.pack("!6H", qid, 0x0100 if rd else 0, 1, 0, 0, 0) + \
        _encode_name(name) + struct.pack("!HH", qt, 1)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    t0 = time.monotonic()
    deadline = t0 + timeout
    try:
        if tcp:
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect((host, port))
                s.sendall(struct.pack("!H", len(pkt)) + pkt)
                n = struct.unpack("!H", _recv_exact(s, 2))[0]
                msg = _recv_exact(s, n)
        else:
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.connect((host, port))
                s.send(pkt)
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise socket.timeout()
                    s.settimeout(left)
                    try:
                        msg = s.recv(65535)
                    except ConnectionRefusedError:
                        # ICMP port unreachable: nobody there.  Keep
                        # waiting like a resolver would, until the timeout.
                        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                        continue
                    if len(msg) >= 2 and struct.unpack("!H", msg[:2])[0] == qid:
                        break
    except (socket.timeout, TimeoutError):
        return _noreply("TIMEOUT", t0)
    except _Closed:
        return _noreply("CLOSED", t0)
    except ConnectionRefusedError:
        return _noreply("CONNREFUSED", t0)
    r = _parse(msg)
    if r["tc"] and not tcp:
        left = max(0.1, deadline - time.monotonic())
        return query_full(server, name, qtype, timeout=left, tcp=True, rd=rd)
    r["elapsed"] = time.monotonic() - t0
    return r


def query(server, name, qtype="A", timeout=2.0):
    """(rcode, [answers of type qtype as text], ttl); see the module text."""
    r = query_full(server, name, qtype, timeout=timeout)
    want = qtype.upper() if isinstance(qtype, str) else QTYPE_NAMES.get(int(qtype), str(qtype))
    recs = [a for a in r["answer"] if a["type"] == want or want == "ANY"]
    if recs:
        ttl = min(a["ttl"] for a in recs)
    else:
        ttl = None
        for a in r["authority"]:
            if a["type"] == "SOA":
                minimum = int(a["data"].split()[-1])
                ttl = min(a["ttl"], minimum)
                break
    return r["rcode"], [a["data"] for a in recs], ttl


def soa_in_authority(server, name, qtype="A", timeout=2.0):
    """The SOA record (dict) in the authority section of the reply, or None."""
    r = query_full(server, name, qtype, timeout=timeout)
    for a in r["authority"]:
        if a["type"] == "SOA":
            return a
    return None


def _free_port(tries=200):
    """A port free for both UDP and TCP on 127.0.0.1 (20000-60000, like
    tests/e2e/lib.sh); None if none found.  Racy by nature: the caller
    retries when its server then fails to bind."""
    for _ in range(tries):
        p = random.randint(20000, 60000)
        socks = []
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return p
    return None


def _deadserver(portfile, logfile):
    """The DNS server that never answers: binds UDP and TCP on one free
    loopback port, writes the port to `portfile` once bound, then reads
    (and logs to `logfile`) every query without ever replying.  TCP
    connections are accepted and held open, silently.  Runs until killed."""
    import selectors
    udp = tcp = None
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            udp = tcp = None
            continue
        tcp.listen(64)
        break
    if udp is None:
        sys.stderr.write("deadserver: no port free for both UDP and TCP\n")
        return 1
    log = open(logfile, "a", buffering=1)

    def note(proto, peer, msg):
        try:
            qname, off = _decode_name(msg, 12)
            qtype = struct.unpack("!H", msg[off:off + 2])[0]
            what = "%s %s" % (qname, QTYPE_NAMES.get(qtype, str(qtype)))
        except Exception:
            what = "(unparsable, %d bytes)" % len(msg)
        log.write("%.3f %s %s:%d %s\n" % (time.time(), proto, peer[0], peer[1], what))

    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ, "udp")
    sel.register(tcp, selectors.EVENT_READ, "listen")
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, portfile)
    bufs = {}
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if key.data == "udp":
                msg, peer = s.recvfrom(65535)
                note("udp", peer, msg)
            elif key.data == "listen":
                c, peer = s.accept()
                c.setblocking(False)
                bufs[c] = (peer, b"")
                sel.register(c, selectors.EVENT_READ, "tcp")
            else:
                try:
                    data = s.recv(65535)
                except OSError:
                    data = b""
                peer, buf = bufs[s]
                if not data:
                    sel.unregister(s)
                    s.close()
                    del bufs[s]
                    continue
                buf += data
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
                    n = struct.unpack("!H", buf[:2])[0]
                    note("tcp", peer, buf[2:2 + n])
                    buf = buf[2 + n:]
                bufs[s] = (peer, buf)


def _wait(server, name, qtype, expect, seconds):
    """Until `server` answers `name`/`qtype` with `expect` among the
    answers (or, for expect "rcode=X", with rcode X).  0 when it did."""
    end = time.monotonic() + seconds
    last = None
    while True:
        try:
            last = query(server, name, qtype, timeout=0.5)
        except Exception as e:           # a garbled reply: report and retry
            last = ("ERROR %s" % e, [], None)
        if expect.startswith("rcode="):
            if last[0] == expect[len("rcode="):]:
                return 0
        elif expect in last[1]:
            return 0
        if time.monotonic() >= end:
            sys.stderr.write("%s %s %s: wanted %s, got %s %s\n"
                             % (server, name, qtype, expect, last[0], last[1]))
            return 1
        time.sleep(0.1)


def _main(argv):
    if len(argv) >= 3 and argv[0] == "query":
        qtype = argv[3] if len(argv) > 3 else "A"
        timeout = float(argv[4]) if len(argv) > 4 else 2.0
        r = query_full(argv[1], argv[2], qtype, timeout=timeout)
        print("%s %s %s -> %s (%.3fs)%s" % (argv[1], argv[2], qtype, r["rcode"],
                                            r["elapsed"], " aa" if r["aa"] else ""))
        for sec in ("answer", "authority", "additional"):
            for a in r[sec]:
                print("  %-10s %s %d %s %s" % (sec, a["name"], a["ttl"], a["type"], a["data"]))
        return 0 if r["rcode"] != "TIMEOUT" else 1
    # the rest is for dnsenv.sh
    if len(argv) == 6 and argv[0] == "wait":
        return _wait(argv[1], argv[2], argv[3], argv[4], float(argv[5]))
    if len(argv) == 1 and argv[0] == "freeport":
        p = _free_port()
        if p is None:
            return 1
        print(p)
        return 0
    if len(argv) == 3 and argv[0] == "deadserver":
        return _deadserver(argv[1], argv[2])
    if len(argv) == 2 and argv[0] == "start":
        env = start(argv[1])
        for k in sorted(env):
            print("%s=%s" % (k, env[k]))
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        return stop(argv[1])
    sys.stderr.write("usage:" + __doc__.split("Command line:")[1])
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

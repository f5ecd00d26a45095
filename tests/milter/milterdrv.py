"""milterdrv: the MTA side of the sendmail milter protocol (version 6).

A small client that talks to a milter over a unix or TCP socket exactly the
way Postfix or sendmail would, so that tests can drive the real daemon
without an MTA, including in ways no MTA ever would (missing macros, RCPT
before MAIL, broken packets).

Wire format (see libmilter's mfdef.h): every packet in either direction is

    uint32 length (network order, counts the command byte) | command byte | data

Strings inside data are NUL-terminated.  Python standard library only.

Typical use:

    with MilterClient.unix(path) as m:
        m.negotiate()
        m.connect("client.example", "4", "192.0.2.99", port=4711,
                  macros={"{daemon_addr}": "192.0.2.1"})
        m.helo("client.example")
        m.mail("<a@example.org>", macros={"i": "ABC123"})
        r = m.rcpt("<u@example.net>")
        assert r.cmd == "y" and r.text.startswith("554 5.7.1")
        res = m.eom()        # EomResult: modifications + final reply
"""

import socket
import struct

# ---------------------------------------------------------------- constants

PROT_VERSION = 6

# commands (MTA -> milter)
SMFIC_ABORT = b"A"
SMFIC_BODY = b"B"
SMFIC_CONNECT = b"C"
SMFIC_MACRO = b"D"
SMFIC_BODYEOB = b"E"
SMFIC_HELO = b"H"
SMFIC_QUIT_NC = b"K"
SMFIC_HEADER = b"L"
SMFIC_MAIL = b"M"
SMFIC_EOH = b"N"
SMFIC_OPTNEG = b"O"
SMFIC_QUIT = b"Q"
SMFIC_RCPT = b"R"
SMFIC_DATA = b"T"
SMFIC_UNKNOWN = b"U"

# address families in CONNECT
SMFIA_UNKNOWN = "U"
SMFIA_UNIX = "L"
SMFIA_INET = "4"
SMFIA_INET6 = "6"

# replies (milter -> MTA)
SMFIR_ADDRCPT = "+"
SMFIR_DELRCPT = "-"
SMFIR_ADDRCPT_PAR = "2"
SMFIR_SHUTDOWN = "4"
SMFIR_ACCEPT = "a"
SMFIR_REPLBODY = "b"
SMFIR_CONTINUE = "c"
SMFIR_DISCARD = "d"
SMFIR_CHGFROM = "e"
SMFIR_CONN_FAIL = "f"
SMFIR_ADDHEADER = "h"
SMFIR_INSHEADER = "i"
SMFIR_SETSYMLIST = "l"
SMFIR_CHGHEADER = "m"
SMFIR_PROGRESS = "p"
SMFIR_QUARANTINE = "q"
SMFIR_REJECT = "r"
SMFIR_SKIP = "s"
SMFIR_TEMPFAIL = "t"
SMFIR_REPLYCODE = "y"
SMFIR_OPTNEG = "O"

# replies that end a command (everything else at EOM is a modification)
FINAL_REPLIES = {SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_DISCARD, SMFIR_REJECT,
                 SMFIR_TEMPFAIL, SMFIR_REPLYCODE, SMFIR_SKIP, SMFIR_CONN_FAIL,
                 SMFIR_SHUTDOWN}

# actions (SMFIF_*) the MTA may allow
SMFIF_ADDHDRS = 0x001
SMFIF_CHGBODY = 0x002
SMFIF_ADDRCPT = 0x004
SMFIF_DELRCPT = 0x008
SMFIF_CHGHDRS = 0x010
SMFIF_QUARANTINE = 0x020
SMFIF_CHGFROM = 0x040
SMFIF_ADDRCPT_PAR = 0x080
SMFIF_SETSYMLIST = 0x100
SMFI_CURR_ACTS = 0x1FF

# protocol steps (SMFIP_*)
SMFIP_NOCONNECT = 0x00000001
SMFIP_NOHELO = 0x00000002
SMFIP_NOMAIL = 0x00000004
SMFIP_NORCPT = 0x00000008
SMFIP_NOBODY = 0x00000010
SMFIP_NOHDRS = 0x00000020
SMFIP_NOEOH = 0x00000040
SMFIP_NR_HDR = 0x00000080
SMFIP_NOUNKNOWN = 0x00000100
SMFIP_NODATA = 0x00000200
SMFIP_SKIP = 0x00000400
SMFIP_RCPT_REJ = 0x00000800
SMFIP_NR_CONN = 0x00001000
SMFIP_NR_HELO = 0x00002000
SMFIP_NR_MAIL = 0x00004000
SMFIP_NR_RCPT = 0x00008000
SMFIP_NR_DATA = 0x00010000
SMFIP_NR_UNKN = 0x00020000
SMFIP_NR_EOH = 0x00040000
SMFIP_NR_BODY = 0x00080000
SMFIP_HDR_LEADSPC = 0x00100000
SMFI_CURR_PROT = 0x001FFFFF

# macro stages in the milter's OPTNEG reply (smfi_setsymlist)
SMFIM_CONNECT = 0
SMFIM_HELO = 1
SMFIM_ENVFROM = 2
SMFIM_ENVRCPT = 3
SMFIM_DATA = 4
SMFIM_EOM = 5
SMFIM_EOH = 6
STAGE_NAMES = {SMFIM_CONNECT: "connect", SMFIM_HELO: "helo",
               SMFIM_ENVFROM: "envfrom", SMFIM_ENVRCPT: "envrcpt",
               SMFIM_DATA: "data", SMFIM_EOM: "eom", SMFIM_EOH: "eoh"}

# For each command that can be skipped: (skip flag, no-reply flag).
STEP_FLAGS = {
    SMFIC_CONNECT: (SMFIP_NOCONNECT, SMFIP_NR_CONN),
    SMFIC_HELO: (SMFIP_NOHELO, SMFIP_NR_HELO),
    SMFIC_MAIL: (SMFIP_NOMAIL, SMFIP_NR_MAIL),
    SMFIC_RCPT: (SMFIP_NORCPT, SMFIP_NR_RCPT),
    SMFIC_DATA: (SMFIP_NODATA, SMFIP_NR_DATA),
    SMFIC_HEADER: (SMFIP_NOHDRS, SMFIP_NR_HDR),
    SMFIC_EOH: (SMFIP_NOEOH, SMFIP_NR_EOH),
    SMFIC_BODY: (SMFIP_NOBODY, SMFIP_NR_BODY),
    SMFIC_UNKNOWN: (SMFIP_NOUNKNOWN, SMFIP_NR_UNKN),
}

MAX_PACKET = 1 << 20    # refuse to read anything bigger from the milter


class ProtocolError(Exception):
    """The milter sent something the protocol does not allow, or closed the
    connection where a reply was due."""


class Closed(ProtocolError):
    """The milter closed the connection."""


class NoAnswer(ProtocolError):
    """The milter did not answer within the socket timeout."""


def _b(s):
    """bytes for a protocol string: str is UTF-8 encoded, bytes pass as is."""
    if s is None:
        return b""
    if isinstance(s, bytes):
        return s
    return s.encode("utf-8", "surrogateescape")


def _cstr(s):
    return _b(s) + b"\0"


def _split_cstrs(data):
    """NUL-terminated strings -> list of bytes (a trailing fragment without
    NUL is kept as the last item)."""
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts


class Reply:
    """One packet from the milter.

    cmd     the reply character ('c', 'r', 'y', 'h', ...)
    data    the raw data bytes
    text    for 'y': the reply string ("554 5.7.1 ..."), decoded
    code    for 'y': the SMTP code as int (554), xcode "5.7.1" if present
    name, value, index   for 'h', 'i', 'm' (header changes)
    """

    def __init__(self, cmd, data):
        self.cmd = cmd
        self.data = data
        self.text = None
        self.code = None
        self.xcode = None
        self.name = None
        self.value = None
        self.index = None
        self.args = []
        if cmd == SMFIR_REPLYCODE:
            self.text = data.rstrip(b"\0").decode("utf-8", "replace")
            first = self.text.split(" ", 2)
            if first and first[0][:3].isdigit():
                self.code = int(first[0][:3])
            if len(first) > 1 and first[1][:1].isdigit() and "." in first[1]:
                self.xcode = first[1]
        elif cmd == SMFIR_ADDHEADER:
            parts = _split_cstrs(data)
            self.name = parts[0].decode("utf-8", "replace") if parts else ""
            self.value = parts[1].decode("utf-8", "replace") if len(parts) > 1 else ""
        elif cmd in (SMFIR_INSHEADER, SMFIR_CHGHEADER):
            if len(data) < 4:
                raise ProtocolError("short %r packet: %r" % (cmd, data))
            self.index = struct.unpack("!I", data[:4])[0]
            parts = _split_cstrs(data[4:])
            self.name = parts[0].decode("utf-8", "replace") if parts else ""
            self.value = parts[1].decode("utf-8", "replace") if len(parts) > 1 else ""
        elif cmd in (SMFIR_ADDRCPT, SMFIR_DELRCPT, SMFIR_ADDRCPT_PAR, SMFIR_CHGFROM,
                     SMFIR_QUARANTINE):
            self.args = [p.decode("utf-8", "replace") for p in _split_cstrs(data)]

    @property
    def final(self):
        return self.cmd in FINAL_REPLIES

    @property
    def is_continue(self):
        return self.cmd == SMFIR_CONTINUE

    @property
    def is_refusal(self):
        """reject/tempfail, plain or with a reply code"""
        return self.cmd in (SMFIR_REJECT, SMFIR_TEMPFAIL) or (
            self.cmd == SMFIR_REPLYCODE and self.code is not None and self.code >= 400)

    def __repr__(self):
        if self.cmd == SMFIR_REPLYCODE:
            return "Reply(y %r)" % self.text
        if self.cmd in (SMFIR_ADDHEADER, SMFIR_INSHEADER, SMFIR_CHGHEADER):
            return "Reply(%s %r: %r)" % (self.cmd, self.name, self.value)
        return "Reply(%s %r)" % (self.cmd, self.data)

    def __str__(self):
        return self.__repr__()


class NoReply:
    """Stands for the reply to a step the milter asked not to be answered
    (SMFIP_NR_*) or that was skipped (SMFIP_NO*): behaves like continue."""

    cmd = SMFIR_CONTINUE
    data = b""
    text = code = xcode = name = value = index = None
    args = []
    final = True
    is_continue = True
    is_refusal = False

    def __init__(self, why):
        self.why = why

    def __repr__(self):
        return "NoReply(%s)" % self.why


class EomResult:
    """The answer to end-of-message: the modifications the milter asked for
    (header additions etc., in order) and the final reply."""

    def __init__(self, mods, final):
        self.mods = mods
        self.final = final

    @property
    def cmd(self):
        return self.final.cmd

    def headers(self, name=None):
        """added/inserted headers as (name, value), optionally only NAME
        (case-insensitive)."""
        out = []
        for r in self.mods:
            if r.cmd in (SMFIR_ADDHEADER, SMFIR_INSHEADER):
                if name is None or r.name.lower() == name.lower():
                    out.append((r.name, r.value))
        return out

    def __repr__(self):
        return "EomResult(mods=%r, final=%r)" % (self.mods, self.final)


class OptNeg:
    """What the milter answered to OPTNEG."""

    def __init__(self, version, actions, protocol, symlists):
        self.version = version
        self.actions = actions
        self.protocol = protocol
        self.symlists = symlists      # {stage number: [macro names]}

    def skips(self, flag):
        return bool(self.protocol & flag)

    def __repr__(self):
        return "OptNeg(v%d actions=%#x protocol=%#x symlists=%r)" % (
            self.version, self.actions, self.protocol,
            {STAGE_NAMES.get(k, k): v for k, v in self.symlists.items()})


class MilterClient:
    """One MTA-side connection to a milter."""

    def __init__(self, sock, timeout=10.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.optneg = None
        self.protocol = 0         # the milter's protocol flags after negotiation
        self.sent = []            # (cmd, data) log of what we sent
        self.received = []        # every Reply read
        self._buf = b""

    # ------------------------------------------------------------ opening

    @classmethod
    def unix(cls, path, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(path)
        except Exception:
            s.close()
            raise
        return cls(s, timeout)

    @classmethod
    def tcp(cls, host, port, timeout=10.0):
        return cls(socket.create_connection((host, port), timeout), timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------ raw I/O

    def send_packet(self, cmd, data=b""):
        """Send one well-formed packet: length, command byte, data."""
        cmd = _b(cmd)
        data = _b(data)
        self.sent.append((cmd, data))
        self.sock.sendall(struct.pack("!I", len(cmd) + len(data)) + cmd + data)

    def send_raw(self, raw):
        """Send arbitrary bytes (broken lengths, truncated packets...)."""
        self.sent.append((b"<raw>", raw))
        self.sock.sendall(raw)

    def _recv_exact(self, n):
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(max(4096, n - len(self._buf)))
            except ConnectionResetError as e:
                raise Closed("connection reset by the milter") from e
            except socket.timeout as e:
                last = self.sent[-1] if self.sent else (b"", b"")
                raise NoAnswer("no answer from the milter within %.1fs after %r %r"
                               % (self.sock.gettimeout(), last[0], last[1][:60])) from None
            if not chunk:
                raise Closed("milter closed the connection (%d of %d bytes read)"
                             % (len(self._buf), n))
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_reply(self):
        """Read one packet from the milter and return it as a Reply."""
        hdr = self._recv_exact(4)
        (length,) = struct.unpack("!I", hdr)
        if length < 1 or length > MAX_PACKET:
            raise ProtocolError("bad packet length %d" % length)
        body = self._recv_exact(length)
        r = Reply(chr(body[0]), body[1:])
        self.received.append(r)
        return r

    def read_final(self):
        """Read replies until one that ends the command; 'p' (progress) is
        skipped.  Returns (modifications, final reply)."""
        mods = []
        while True:
            r = self.read_reply()
            if r.cmd == SMFIR_PROGRESS:
                continue
            if r.final:
                return mods, r
            mods.append(r)

    def at_eof(self, wait=2.0):
        """True when the milter has closed the connection (nothing more
        to read) within WAIT seconds."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            if self._buf:
                return False
            try:
                data = self.sock.recv(1)
            except (socket.timeout, BlockingIOError):
                return False
            except (ConnectionResetError, OSError):
                return True
            if data:
                self._buf += data
                return False
            return True
        finally:
            self.sock.settimeout(old)

    # ------------------------------------------------------------ steps

    def _step(self, cmd, data, expect_reply=True):
        """Send a protocol step and read its reply, honouring what the
        milter negotiated: a skipped step is not sent, a no-reply step is
        not waited for."""
        flags = STEP_FLAGS.get(_b(cmd))
        if flags and self.optneg is not None:
            skip, noreply = flags
            if self.protocol & skip:
                return NoReply("skipped")
            self.send_packet(cmd, data)
            if self.protocol & noreply:
                return NoReply("no reply")
        else:
            self.send_packet(cmd, data)
        if not expect_reply:
            return None
        mods, final = self.read_final()
        if mods:
            raise ProtocolError("modification replies %r before %r to %r"
                                % (mods, final, cmd))
        return final

    def negotiate(self, version=PROT_VERSION, actions=SMFI_CURR_ACTS,
                  protocol=SMFI_CURR_PROT):
        """OPTNEG: offer ACTIONS and every protocol step PROTOCOL; remember
        which steps the milter wants skipped.  Returns an OptNeg."""
        self.send_packet(SMFIC_OPTNEG, struct.pack("!III", version, actions, protocol))
        r = self.read_reply()
        if r.cmd != SMFIR_OPTNEG:
            raise ProtocolError("expected OPTNEG reply, got %r" % r)
        if len(r.data) < 12:
            raise ProtocolError("short OPTNEG reply %r" % r.data)
        v, a, p = struct.unpack("!III", r.data[:12])
        symlists = {}
        rest = r.data[12:]
        while len(rest) >= 4:
            (stage,) = struct.unpack("!I", rest[:4])
            rest = rest[4:]
            nul = rest.find(b"\0")
            if nul < 0:
                names, rest = rest, b""
            else:
                names, rest = rest[:nul], rest[nul + 1:]
            symlists[stage] = names.decode("ascii", "replace").split()
        self.optneg = OptNeg(v, a, p, symlists)
        self.protocol = p
        return self.optneg

    def macro(self, cmd, macros):
        """Send a MACRO ('D') packet for the command CMD ('C', 'H', 'M',
        'R', 'T', 'N', 'E'); MACROS is a dict or a list of (name, value).
        No reply is expected."""
        items = macros.items() if isinstance(macros, dict) else macros
        data = _b(cmd)
        for name, value in items:
            data += _cstr(name) + _cstr(value)
        self.send_packet(SMFIC_MACRO, data)

    def _macros(self, cmd, macros):
        if macros:
            self.macro(cmd, macros)

    def connect(self, hostname, family=SMFIA_INET, addr=None, port=25, macros=None):
        """CONNECT: hostname, family '4', '6', 'L' (unix path in ADDR) or
        'U' (unknown: no port, no address)."""
        self._macros(SMFIC_CONNECT, macros)
        data = _cstr(hostname) + _b(family)
        if family != SMFIA_UNKNOWN:
            data += struct.pack("!H", port) + _cstr(addr or "")
        return self._step(SMFIC_CONNECT, data)

    def helo(self, name, macros=None):
        self._macros(SMFIC_HELO, macros)
        return self._step(SMFIC_HELO, _cstr(name))

    def _args(self, args):
        if isinstance(args, (str, bytes)):
            args = [args]
        return b"".join(_cstr(a) for a in args)

    def mail(self, args, macros=None):
        """MAIL FROM: ARGS is the address ("<a@b>") or a list of it and
        ESMTP parameters."""
        self._macros(SMFIC_MAIL, macros)
        return self._step(SMFIC_MAIL, self._args(args))

    def rcpt(self, args, macros=None):
        self._macros(SMFIC_RCPT, macros)
        return self._step(SMFIC_RCPT, self._args(args))

    def data(self, macros=None):
        self._macros(SMFIC_DATA, macros)
        return self._step(SMFIC_DATA, b"")

    def header(self, name, value):
        return self._step(SMFIC_HEADER, _cstr(name) + _cstr(value))

    def eoh(self, macros=None):
        self._macros(SMFIC_EOH, macros)
        return self._step(SMFIC_EOH, b"")

    def body(self, chunk):
        return self._step(SMFIC_BODY, _b(chunk))

    def unknown(self, line):
        return self._step(SMFIC_UNKNOWN, _cstr(line))

    def eom(self, chunk=b"", macros=None):
        """End of message: returns an EomResult (modifications + final)."""
        self._macros(SMFIC_BODYEOB, macros)
        self.send_packet(SMFIC_BODYEOB, _b(chunk))
        mods, final = self.read_final()
        return EomResult(mods, final)

    def message(self, headers=(), body=b"", macros=None):
        """DATA, headers, EOH, body, EOM, each only if the milter did not
        ask to skip it.  Returns the EomResult (or the refusal Reply of an
        earlier step)."""
        r = self.data()
        if r.is_refusal:
            return r
        for name, value in headers:
            r = self.header(name, value)
            if r.is_refusal:
                return r
        r = self.eoh()
        if r.is_refusal:
            return r
        if body:
            r = self.body(body)
            if r.is_refusal:
                return r
        return self.eom(macros=macros)

    def abort(self):
        """ABORT: end the transaction; no reply."""
        self.send_packet(SMFIC_ABORT)

    def quit(self):
        """QUIT: end the connection; no reply."""
        try:
            self.send_packet(SMFIC_QUIT)
        except OSError:
            pass

    def quit_nc(self):
        """QUIT_NC: end this connection's session, a new one follows on the
        same socket; no reply."""
        self.send_packet(SMFIC_QUIT_NC)

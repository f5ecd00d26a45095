#!/usr/bin/env python3
"""smtpraw.py HOST PORT SOURCE-ADDR COMMAND...: a raw SMTP client for inputs
swaks will not send (8-bit bytes, control characters, over-long lines).

Each COMMAND is sent as one line, after turning \\xNN escapes into bytes.
After a 354 reply to DATA a small message is sent.  The transcript is
printed in swaks' format (" -> " commands, "<-  " good replies, "<** " bad
ones), with every byte outside printable ASCII (and the backslash) shown as
\\xNN, so tests/e2e/lib.sh's rcpt_reply can read it.  Exit status 0 unless
the connection failed.
"""
import re
import socket
import sys


def unescape(s):
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)),
                  s).encode("latin-1")


def esc(b):
    return "".join(chr(c) if 32 <= c < 127 and c != 0x5C else "\\x%02x" % c
                   for c in b)


def main():
    host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(40)
    if src and src != "-":
        s.bind((src, 0))
    s.connect((host, port))
    f = s.makefile("rb")

    def reply():
        code = None
        while True:
            line = f.readline()
            if not line:
                print("*** connection closed by server")
                return None
            line = line.rstrip(b"\r\n")
            code = line[:3].decode("latin-1")
            mark = "<-  " if code[:1] in "23" else "<** "
            print(mark + esc(line))
            if len(line) < 4 or line[3:4] != b"-":
                return code

    if reply() is None:
        return 1
    for cmd in sys.argv[4:]:
        data = unescape(cmd)
        print(" -> " + esc(data))
        s.sendall(data + b"\r\n")
        code = reply()
        if code is None:
            return 0
        if data.upper() == b"DATA" and code == "354":
            body = (b"From: smtpraw <smtpraw@origin.example>\r\n"
                    b"Subject: smtpraw test\r\n\r\nhello\r\n.\r\n")
            print(" -> (message)")
            s.sendall(body)
            if reply() is None:
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

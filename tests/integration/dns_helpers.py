"""Helpers for the DNS responder tests (issue 3): dig wrappers and raw DNS messages.

dig comes from bind9-dnsutils (scripts/install-deps.sh). Every query is bounded
(+time, +tries) and goes to loopback or into a namespace the test made."""

import ipaddress
import re
import shutil
import socket
import struct
import subprocess

import pytest

STATUS_RE = re.compile(r"status: ([A-Z]+)")


def need_dig():
    if not shutil.which("dig"):
        pytest.skip("dig not installed (bind9-dnsutils; scripts/install-deps.sh test)")


def dig(listen, name, qtype="A", tcp=False, ns=None, extra=()):
    """Asks prism's responder at listen ("127.0.0.1:PORT"). Returns (status, [rdata])."""
    host, port = listen.rsplit(":", 1)
    args = ["dig", f"@{host.strip('[]')}", "-p", port, name, qtype, "+time=2", "+tries=2",
            "+noall", "+comments", "+answer", *extra]
    if tcp:
        args.append("+tcp")
    if ns is not None:
        args = ns.exec_prefix + args
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    m = STATUS_RE.search(r.stdout)
    assert m, f"{' '.join(args)}: no status in dig's output:\n{r.stdout}{r.stderr}"
    answers = []
    for line in r.stdout.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        parts = line.split()
        # name TTL class type rdata
        assert len(parts) == 5 and parts[2] == "IN", f"odd answer line {line!r}"
        assert parts[3] == qtype, f"answer of type {parts[3]} to a {qtype} query: {line!r}"
        assert parts[0].lower() == name.lower().rstrip(".") + ".", line
        assert int(parts[1]) == 60, f"TTL {parts[1]}, want 60: {line!r}"
        answers.append(parts[4])
    return m.group(1), sorted(answers)


def dns_listen(p):
    return p.config["dns"]["listen"]


def in_net(addr, net):
    return ipaddress.ip_address(addr) in ipaddress.ip_network(net)


# --------------------------------------------------------------------------------
# raw messages, for what dig will not send


def qname(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(name, qtype=1, qid=0x4242, flags=0x0100, qdcount=1, body=None):
    hdr = struct.pack(">HHHHHH", qid, flags, qdcount, 0, 0, 0)
    if body is None:
        body = qname(name) + struct.pack(">HH", qtype, 1)
    return hdr + body


def header(msg):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
    return {"id": qid, "qr": flags >> 15, "opcode": (flags >> 11) & 15, "aa": (flags >> 10) & 1,
            "tc": (flags >> 9) & 1, "rcode": flags & 15, "qd": qd, "an": an, "ns": ns, "ar": ar}


def udp_ask(listen, msg, timeout=3.0):
    host, port = listen.rsplit(":", 1)
    host = host.strip("[]")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(msg, (host, int(port)))
        return s.recv(65535)
    finally:
        s.close()


def tcp_connect(listen, timeout=3.0):
    host, port = listen.rsplit(":", 1)
    host = host.strip("[]")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def tcp_read_reply(s):
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            assert chunk, f"EOF after {len(buf)} of {n} bytes"
            buf += chunk
        return buf

    (n,) = struct.unpack(">H", exact(2))
    return exact(n)

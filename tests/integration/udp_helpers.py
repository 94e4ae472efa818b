"""Helpers for the UDP tests (issue 4): UDP origins run as Python threads, an
independent PROXY v2 decoder and SPP codec written from the specifications (haproxy
doc/proxy-protocol.txt 2.2, Cloudflare's "Simple Proxy Protocol Header" page; not
from prism's C code), dnsmasq, RSS and event-log readers.

Everything binds to 127.0.0.0/8 or ::1 only."""

import contextlib
import datetime
import ipaddress
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request

from conftest import PRISM_BIN, app, family_of, wait_until

# --------------------------------------------------------------------------------
# configuration


def udp_cfg(apps, idle_ms=1000, edge=("127.0.0.1", "::1"), **extra):
    c = {
        "edge": {"addresses": list(edge)},
        "timeouts": {"udp_idle_ms": idle_ms, "drain_ms": 1000},
        "apps": apps,
    }
    c.update(extra)
    return c


def udp_app(app_id, edge_port, origin_port, pp="off", origin_host="127.0.0.1"):
    """edge_port / origin_port: an int or a (lo, hi) range."""
    e = f"{edge_port[0]}-{edge_port[1]}" if isinstance(edge_port, tuple) else str(edge_port)
    o = f"{origin_port[0]}-{origin_port[1]}" if isinstance(origin_port, tuple) else str(origin_port)
    host = f"[{origin_host}]" if ":" in origin_host else origin_host
    return app(app_id, f"udp/{e}", f"udp://{host}:{o}", pp=pp)


# --------------------------------------------------------------------------------
# sockets


def udp_client(dest=None, bind_host=None, family=None, timeout=2.0):
    """A UDP socket bound to port 0 (on bind_host, or the loopback of dest's family);
    connected to dest when given, so it only accepts datagrams from exactly dest."""
    if family is None:
        family = family_of(dest[0] if dest else (bind_host or "127.0.0.1"))
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    if bind_host is None:
        bind_host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    s.bind((bind_host, 0))
    if dest is not None:
        s.connect(dest)
    return s


def recv_or_none(s, timeout, size=65536):
    """One datagram, or None if nothing arrives within timeout."""
    poller = select.poll()  # not select(): the 10,000-flow test uses fds above 1023
    poller.register(s, select.POLLIN)
    if not poller.poll(timeout * 1000):
        return None
    return s.recv(size)


class UdpOrigin:
    """A UDP server on (host, port) run by a thread: handler(data, peer, sock) is
    called for each datagram. Every datagram is kept in .got as (data, peer)."""

    def __init__(self, handler, host="127.0.0.1", port=0, rcvbuf=None, keep=True):
        self.sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((host, port))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.handler = handler
        self.keep = keep
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.got = []
        self.count = 0
        self.errors = []
        self.closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while not self.closed:
            try:
                if not poller.poll(100):
                    continue
                data, peer = self.sock.recvfrom(70000)
            except OSError:
                if self.closed:
                    return
                continue  # an ICMP error queued on the socket, for instance
            with self.cond:
                self.count += 1
                if self.keep:
                    self.got.append((data, peer[:2]))
                self.cond.notify_all()
            try:
                if self.handler:
                    self.handler(data, peer, self.sock)
            except Exception as e:  # noqa: BLE001 - reported by the test
                with self.lock:
                    self.errors.append(e)

    def wait(self, n, timeout=5.0):
        """Waits until n datagrams have arrived in total; returns .got."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"UDP origin :{self.port} got {self.count} of {n} datagrams in {timeout}s")
                self.cond.wait(left)
            return list(self.got)

    def close(self):
        self.closed = True
        self.thread.join(2)
        with contextlib.suppress(OSError):
            self.sock.close()


def echo(data, peer, sock):
    sock.sendto(data, peer)


class UdpOrigins:
    def __init__(self):
        self.items = []

    def __call__(self, handler=echo, host="127.0.0.1", port=0, **kw):
        o = UdpOrigin(handler, host, port, **kw)
        self.items.append(o)
        return o

    def close(self):
        for o in self.items:
            o.close()


# --------------------------------------------------------------------------------
# PROXY protocol v2: an independent decoder (haproxy doc/proxy-protocol.txt 2.2)

PP2_SIG = bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])


class PP2:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f"PP2({self.__dict__})"


def decode_pp2(buf):
    """Decodes a PROXY v2 header at the start of buf, strictly; fails (AssertionError)
    on anything a receiver must reject. Returns PP2(ver_cmd, fam, length, src, dst,
    sport, dport, tlvs, header_len, payload)."""
    assert len(buf) >= 16, f"shorter than the 16-byte v2 header: {buf[:64].hex()}"
    assert buf[:12] == PP2_SIG, f"no v2 signature: {buf[:16].hex()}"
    ver_cmd, fam = buf[12], buf[13]
    assert ver_cmd >> 4 == 2, f"version nibble {ver_cmd >> 4}, not 2"
    assert ver_cmd & 0xF in (0, 1), f"command {ver_cmd & 0xF} is neither LOCAL nor PROXY"
    (length,) = struct.unpack("!H", buf[14:16])
    assert 16 + length <= len(buf), f"header length {length} beyond the datagram ({len(buf)} bytes)"
    body = buf[16 : 16 + length]
    out = PP2(ver_cmd=ver_cmd, fam=fam, length=length, header_len=16 + length, payload=buf[16 + length :])
    if fam in (0x11, 0x12):
        assert length >= 12, f"INET block needs 12 bytes, length is {length}"
        out.src = str(ipaddress.IPv4Address(body[0:4]))
        out.dst = str(ipaddress.IPv4Address(body[4:8]))
        out.sport, out.dport = struct.unpack("!HH", body[8:12])
        rest = body[12:]
    elif fam in (0x21, 0x22):
        assert length >= 36, f"INET6 block needs 36 bytes, length is {length}"
        out.src = str(ipaddress.IPv6Address(body[0:16]))
        out.dst = str(ipaddress.IPv6Address(body[16:32]))
        out.sport, out.dport = struct.unpack("!HH", body[32:36])
        rest = body[36:]
    else:
        raise AssertionError(f"family/transport byte 0x{fam:02x} is not INET/INET6")
    tlvs = []
    i = 0
    while i < len(rest):
        assert i + 3 <= len(rest), f"truncated TLV at offset {i}: {rest.hex()}"
        t = rest[i]
        (tl,) = struct.unpack("!H", rest[i + 1 : i + 3])
        assert i + 3 + tl <= len(rest), f"TLV 0x{t:02x} of length {tl} runs past the header"
        tlvs.append((t, rest[i + 3 : i + 3 + tl]))
        i += 3 + tl
    out.tlvs = tlvs
    return out


# --------------------------------------------------------------------------------
# Simple Proxy Protocol (Cloudflare): 38 bytes, network byte order

SPP_MAGIC = 0x56EC
SPP_LEN = 38


def v6bytes(ip):
    """16 bytes: IPv6 as is, IPv4 as the IPv4-mapped ::ffff:a.b.c.d (RFC 4291 2.5.5.2)."""
    a = ipaddress.ip_address(ip)
    if a.version == 4:
        return b"\x00" * 10 + b"\xff\xff" + a.packed
    return a.packed


def spp_header(client_ip, client_port, proxy_ip, proxy_port, magic=SPP_MAGIC):
    return (
        struct.pack("!H", magic)
        + v6bytes(client_ip)
        + v6bytes(proxy_ip)
        + struct.pack("!HH", client_port, proxy_port)
    )


# --------------------------------------------------------------------------------
# prism: extra arguments, counters, memory, event log


METRIC_RE = re.compile(r"^\s*(prism_[a-z0-9_]+)(?:\{[^}]*\})?\s+([0-9]+)\s*$")


def parse_metrics(text):
    out = {}
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def http_metrics(p, timeout=1.0):
    """prism's /metrics (Prometheus text) from its API listener, or None when the API
    does not serve it (not built yet)."""
    listen = p.config.get("api", {}).get("listen")
    if not listen:
        return None
    try:
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=timeout) as r:
            if r.status != 200:
                return None
            m = parse_metrics(r.read().decode("utf-8", "replace"))
            return m or None
    except (OSError, ValueError):
        return None


def sigusr1_supported():
    r = subprocess.run([PRISM_BIN, "--help"], capture_output=True, text=True, timeout=10)
    return "SIGUSR1" in (r.stdout + r.stderr)


COUNTER_LOG_RE = re.compile(r"\bcounter (prism_[a-z0-9_]+)(?:\{[^}]*\})? ([0-9]+)\s*$")


def counters_from_log(p, timeout=3.0):
    """Sends SIGUSR1 (prism logs one 'counter NAME VALUE' line per counter of /metrics)
    and parses those lines; None if this prism does not document SIGUSR1 (the default
    action would kill it)."""
    if not sigusr1_supported():
        return None
    n = p.line_count()
    p.signal(signal.SIGUSR1)
    p.wait_log(r"\bcounter prism_udp_dropped_total\b", timeout=timeout, start=n, what="the counter lines after SIGUSR1")
    time.sleep(0.1)  # the rest of the block
    with p.cond:
        lines = p.lines[n:]
    out = {}
    for line in lines:
        m = COUNTER_LOG_RE.search(line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out or None


def counters(p):
    """prism's counters: /metrics if the API serves it, else the SIGUSR1 log lines;
    None if neither exists."""
    m = http_metrics(p)
    if m is not None:
        return m
    return counters_from_log(p)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def parse_ts(s):
    """RFC 3339 UTC with milliseconds -> seconds since the epoch."""
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def udp_flow_events(p, client_port, client_ip=None, app_id=None, timeout=8.0):
    """(connect, closing) records of one UDP flow, via Prism.conn_events, filtered to
    ClientProto udp (iperf3 also makes a TCP connection from another port)."""

    def mine(r):
        return (
            r.get("ClientPort") == client_port
            and r.get("ClientProto") == "udp"
            and (client_ip is None or r.get("ClientIP") == client_ip)
            and (app_id is None or r.get("Application") == app_id)
        )

    recs = p.events(where=mine)
    deadline = time.monotonic() + timeout
    while not any(r.get("Event") in p.CLOSING for r in recs):
        assert time.monotonic() < deadline, (
            f"no closing record for udp client port {client_port} after {timeout}s: {recs}\nprism log:\n{p.log_text(20)}"
        )
        time.sleep(0.05)
        recs = p.events(where=mine)
    time.sleep(0.2)  # a duplicate closing record would show up by now
    recs = p.events(where=mine)
    desc = "\n".join(json.dumps(r) for r in recs)
    assert len(recs) == 2, f"expected one connect and one closing record for udp port {client_port}, got:\n{desc}"
    c, d = recs
    assert c["Event"] == "connect" and c["Status"] == 0, f"first record must be connect/0:\n{desc}"
    assert d["Event"] in p.CLOSING, f"second record must be a closing one:\n{desc}"
    return c, d


def events_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def count_events(path, app_id, client_ports=None, offset=0):
    """Counts (connect, disconnect-200, other) records of app_id in the event log from
    byte offset on, without keeping 20,000 parsed records around."""
    conn = disc = other = 0
    seen_conn, seen_disc = set(), set()
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return 0, 0, 0, seen_conn, seen_disc
    needle = f'"Application":"{app_id}"'.encode()
    for line in data.split(b"\n")[:-1]:
        if needle not in line:
            continue
        r = json.loads(line)
        if r.get("Application") != app_id:
            continue
        port = r.get("ClientPort")
        if client_ports is not None and port not in client_ports:
            continue
        if r["Event"] == "connect":
            conn += 1
            seen_conn.add(port)
        elif r["Event"] == "disconnect" and r["Status"] == 200:
            disc += 1
            seen_disc.add(port)
        else:
            other += 1
    return conn, disc, other, seen_conn, seen_disc


# --------------------------------------------------------------------------------
# dnsmasq


DNSMASQ = "/usr/sbin/dnsmasq"


def start_dnsmasq(procs, workdir, port):
    """dnsmasq answering test.example with 192.0.2.55 and 2001:db8::55 on
    127.0.0.1:port; returns the Popen once it answers."""
    pid_file = os.path.join(workdir, "dnsmasq.pid")
    log = open(os.path.join(workdir, "dnsmasq.log"), "w")
    args = [
        DNSMASQ,
        "--no-daemon",
        "--conf-file=/dev/null",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--address=/test.example/192.0.2.55",
        "--address=/test.example/2001:db8::55",
        f"--pid-file={pid_file}",
        "--user=root",
        "--group=root",
        "--log-facility=-",
    ]
    proc = procs.spawn(args, stdout=log, stderr=subprocess.STDOUT)

    def answers():
        assert proc.poll() is None, f"dnsmasq exited {proc.returncode}: {open(log.name).read()}"
        return dig("127.0.0.1", port, "test.example", "A", timeout=1) == ["192.0.2.55"]

    wait_until(answers, timeout=10, msg="dnsmasq to answer")
    return proc


def dig(server, port, name, rtype, timeout=2):
    r = subprocess.run(
        ["dig", f"@{server}", "-p", str(port), name, rtype, "+short", f"+time={timeout}", "+tries=1"],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
    )
    if r.returncode != 0:
        return None
    return r.stdout.split()

"""TCP proxying (issue 2): echo through prism on IPv4 and IPv6 edges, port ranges,
origin failover, the exact PROXY v1/v2 bytes, 1 GiB integrity each way, and
half-closes in both directions, each checked against the event log."""

import hashlib
import ipaddress
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (
    Thread,
    app,
    check_record,
    connect,
    recv_exact,
    recv_stream,
    recv_until_eof,
    send_stream,
    set_rst_on_close,
    wait_until,
)
from udp_helpers import http_metrics

PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def edge_cfg(apps, edges=("127.0.0.1", "::1"), **timeouts):
    t = {"connect_ms": 2000, "drain_ms": 2000}
    t.update(timeouts)
    return {"edge": {"addresses": list(edges)}, "timeouts": t, "apps": apps}


@pytest.mark.parametrize("client_ip", ["127.0.0.1", "::1"])
def test_echo_and_event_fields(prism, origins, ports, client_ip):
    echo = origins.echo()
    eport = ports()
    p = prism(edge_cfg([app("echo", f"tcp/{eport}", echo.addr)]))

    payload = bytes(range(256)) * 40  # 10240 bytes
    s = connect(client_ip, eport)
    cport = s.getsockname()[1]
    s.sendall(payload)
    assert recv_exact(s, len(payload)) == payload, "echo through prism changed the bytes"
    s.shutdown(socket.SHUT_WR)
    rest, err = recv_until_eof(s)
    s.close()
    assert rest == b"" and err is None, f"after the echo: extra bytes {rest[:40]!r} or error {err!r}"

    c, d = p.conn_events(cport, client_ip)
    check_record(c, Application="echo", ClientIP=client_ip, ClientPort=cport, Event="connect", Status=0, ColoCode="TST")
    check_record(
        d,
        Application="echo",
        ClientIP=client_ip,
        ClientPort=cport,
        ClientProto="tcp",
        ClientBytes=len(payload),
        OriginIP="127.0.0.1",
        OriginPort=echo.port,
        OriginProto="tcp",
        OriginBytes=len(payload),
        ColoCode="TST",
        Event="disconnect",
        ProxyProtocol="off",
        Status=200,
    )
    assert c["ConnectTimestamp"] == d["ConnectTimestamp"], f"ConnectTimestamp differs between records: {c} / {d}"
    assert echo.peers and echo.peers[0][0] == "127.0.0.1", f"origin saw {echo.peers}"


def test_port_range_maps_by_offset(prism, origins, ports):
    n = 5
    edge = ports.range(n)
    tagged = []
    oports = ports.range(n, hosts=("127.0.0.1",))

    def tag(conn, peer, server):
        conn.sendall(b"port=%d\n" % server.port)
        conn.settimeout(10)
        while conn.recv(4096):
            pass
        conn.close()

    for op in oports:
        tagged.append(origins.scripted(tag, port=op))
    a = app("range", f"tcp/{edge[0]}-{edge[-1]}", f"tcp://127.0.0.1:{oports[0]}-{oports[-1]}")
    p = prism(edge_cfg([a]))

    for i in range(n):
        for host in ("127.0.0.1", "::1"):
            s = connect(host, edge[i])
            want = b"port=%d\n" % oports[i]
            got = recv_exact(s, len(want))
            s.close()
            assert got == want, f"edge port {edge[i]} (+{i}) via {host} reached {got!r}, expected origin port {oports[i]}"
    recs = p.events(4 * n, where=lambda r: r.get("Application") == "range", timeout=5)
    closing = [r for r in recs if r["Event"] != "connect"]
    assert sorted(r["OriginPort"] for r in closing) == sorted(oports * 2), f"OriginPort values: {closing}"


def test_origin_failover_to_next_entry(prism, origins, ports):
    dead = ports(hosts=("127.0.0.1",))  # nothing listens here: refused
    echo = origins.echo()
    eport = ports()
    p = prism(edge_cfg([app("fo", f"tcp/{eport}", [f"tcp://127.0.0.1:{dead}", echo.addr])]))
    for i in range(3):
        s = connect("127.0.0.1", eport)
        cport = s.getsockname()[1]
        s.sendall(b"x" * 100)
        assert recv_exact(s, 100) == b"x" * 100, "no echo after failing over from a refused origin"
        s.close()
        _, d = p.conn_events(cport)
        check_record(d, Status=200, Event="disconnect", OriginPort=echo.port, ClientBytes=100, OriginBytes=100)


# ---------------------------------------------------------------------------------
# PROXY protocol: exact bytes on the origin side


def read_pp_header(conn):
    """Reads exactly one PROXY header (v1 or v2) and nothing after it."""
    first = recv_exact(conn, 12)
    if first == PP2_SIG:
        rest = recv_exact(conn, 4)
        (length,) = struct.unpack("!H", rest[2:4])
        return first + rest + recv_exact(conn, length)
    hdr = bytearray(first)
    while not hdr.endswith(b"\r\n"):
        assert len(hdr) < 107, f"v1 line without CRLF in 107 bytes: {bytes(hdr)!r}"
        hdr += recv_exact(conn, 1)
    return bytes(hdr)


def expected_v1(cip, cport, eip, eport):
    fam = "TCP6" if ":" in cip else "TCP4"
    return f"PROXY {fam} {cip} {eip} {cport} {eport}\r\n".encode()


def check_v2(hdr, cip, cport, eip, eport):
    assert hdr[:12] == PP2_SIG, f"bad v2 signature: {hdr[:16].hex()}"
    assert hdr[12] == 0x21, f"v2 ver/cmd must be 0x21 (v2, PROXY), got {hdr[12]:#x}"
    (length,) = struct.unpack("!H", hdr[14:16])
    assert length == len(hdr) - 16
    if ":" in cip:
        assert hdr[13] == 0x21, f"v2 fam/transport must be 0x21 (TCP over IPv6), got {hdr[13]:#x}"
        block = ipaddress.IPv6Address(cip).packed + ipaddress.IPv6Address(eip).packed + struct.pack("!HH", cport, eport)
    else:
        assert hdr[13] == 0x11, f"v2 fam/transport must be 0x11 (TCP over IPv4), got {hdr[13]:#x}"
        block = ipaddress.IPv4Address(cip).packed + ipaddress.IPv4Address(eip).packed + struct.pack("!HH", cport, eport)
    assert length >= len(block), f"v2 length {length} shorter than the address block"
    assert hdr[16 : 16 + len(block)] == block, (
        f"v2 address block: got {hdr[16:16 + len(block)].hex()}, expected {block.hex()} "
        f"(client {cip}:{cport}, edge {eip}:{eport})"
    )
    tlvs = hdr[16 + len(block) :]
    i = 0
    while i < len(tlvs):  # every TLV must lie inside the header
        assert i + 3 <= len(tlvs), f"truncated TLV at offset {i}: {tlvs.hex()}"
        (tl,) = struct.unpack("!H", tlvs[i + 1 : i + 3])
        assert i + 3 + tl <= len(tlvs), f"TLV type {tlvs[i]:#x} overruns the header: {tlvs.hex()}"
        i += 3 + tl
    assert len(hdr) <= 536, f"v2 header of {len(hdr)} bytes is larger than 536"


@pytest.mark.parametrize("pp", ["v1", "v2"])
@pytest.mark.parametrize("client_ip", ["127.0.0.1", "::1"])
def test_proxy_header_exact_bytes(prism, origins, ports, pp, client_ip):
    got = {}
    done = threading.Event()
    # The client's own bytes look like a PROXY header: they must reach the origin
    # verbatim after ours, never be parsed (testing.md 3.a A1).
    forged = b"PROXY TCP4 6.6.6.6 6.6.6.7 1 2\r\n" + PP2_SIG + b"\x21\x11\x00\x0c" + b"\x06" * 12 + b"hello"

    def origin(conn, peer, server):
        got["hdr"] = read_pp_header(conn)
        got["data"] = recv_exact(conn, len(forged))
        conn.sendall(b"ok")
        done.set()
        conn.settimeout(10)
        while conn.recv(4096):
            pass
        conn.close()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(edge_cfg([app("pp", f"tcp/{eport}", o.addr, pp=pp)]))
    s = connect(client_ip, eport)
    cport = s.getsockname()[1]
    s.sendall(forged)
    assert recv_exact(s, 2) == b"ok", "origin did not answer through prism"
    s.close()
    assert done.wait(5), "origin never got the header and payload"
    if pp == "v1":
        want = expected_v1(client_ip, cport, client_ip, eport)
        assert got["hdr"] == want, f"v1 header: got {got['hdr']!r}, expected {want!r}"
    else:
        check_v2(got["hdr"], client_ip, cport, client_ip, eport)
    assert got["data"] == forged, f"client bytes after the header were changed: {got['data']!r}"
    _, d = p.conn_events(cport, client_ip)
    check_record(d, Status=200, ProxyProtocol=pp, ClientBytes=len(forged), OriginBytes=2, Application="pp")


# ---------------------------------------------------------------------------------
# integrity and half-close

GIB = 1 << 30


def test_integrity_1gib_each_way_random_writes(prism, origins, ports):
    """1 GiB each way at once, random write sizes, SHA-256 compared at both ends."""
    total = GIB
    res = {}

    def origin(conn, peer, server):
        conn.settimeout(60)
        rx = Thread(recv_stream, conn, name="origin-rx")
        rx.start()
        res["origin_sent"] = send_stream(conn, 2002, total)
        conn.shutdown(socket.SHUT_WR)
        res["origin_got"] = rx.join_result(90)
        conn.close()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(edge_cfg([app("bulk", f"tcp/{eport}", o.addr)]))
    s = connect("127.0.0.1", eport, timeout=60)
    cport = s.getsockname()[1]
    t0 = time.monotonic()
    rx = Thread(recv_stream, s, name="client-rx")
    rx.start()
    sent = send_stream(s, 1001, total)
    s.shutdown(socket.SHUT_WR)
    got = rx.join_result(90)
    s.close()
    elapsed = time.monotonic() - t0
    deadline = time.monotonic() + 20
    while "origin_got" not in res and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not o.errors, f"origin failed: {o.errors!r}"
    assert "origin_got" in res, "origin did not finish reading"
    assert res["origin_got"] == sent, f"client->origin: sent {sent}, origin got {res['origin_got']}"
    assert got == res["origin_sent"], f"origin->client: sent {res['origin_sent']}, client got {got}"
    print(f"2 GiB through prism in {elapsed:.1f}s")
    _, d = p.conn_events(cport, timeout=10)
    check_record(d, Status=200, Event="disconnect", ClientBytes=total, OriginBytes=total)


def test_client_half_close_delivers_everything(prism, origins, ports):
    n, m = 3 * 1024 * 1024 + 17, 5 * 1024 * 1024 + 3
    res = {}

    def origin(conn, peer, server):
        conn.settimeout(20)
        res["got"] = recv_stream(conn)  # to EOF: the client's FIN passed on
        res["sent"] = send_stream(conn, 44, m, max_write=64 * 1024)
        conn.close()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(edge_cfg([app("hc", f"tcp/{eport}", o.addr)]))
    s = connect("127.0.0.1", eport, timeout=20)
    cport = s.getsockname()[1]
    sent = send_stream(s, 33, n, max_write=64 * 1024)
    s.shutdown(socket.SHUT_WR)
    got = recv_stream(s)
    s.close()
    assert not o.errors, f"origin failed: {o.errors!r}"
    assert res.get("got") == sent, f"origin got {res.get('got')}, client sent {sent}"
    assert got == res["sent"], f"after its half-close the client got {got}, origin sent {res['sent']}"
    _, d = p.conn_events(cport)
    check_record(d, Status=200, Event="disconnect", ClientBytes=n, OriginBytes=m)


def test_origin_half_close_delivers_everything(prism, origins, ports):
    n, m = 2 * 1024 * 1024 + 5, 4 * 1024 * 1024 + 11
    res = {}
    done = threading.Event()

    def origin(conn, peer, server):
        conn.settimeout(20)
        res["sent"] = send_stream(conn, 66, m, max_write=64 * 1024)
        conn.shutdown(socket.SHUT_WR)
        res["got"] = recv_stream(conn)
        conn.close()
        done.set()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(edge_cfg([app("hco", f"tcp/{eport}", o.addr)]))
    s = connect("::1", eport, timeout=20)
    cport = s.getsockname()[1]
    got = recv_stream(s)  # to EOF: the origin's FIN passed on
    sent = send_stream(s, 55, n, max_write=64 * 1024)
    s.shutdown(socket.SHUT_WR)
    rest, err = recv_until_eof(s)
    s.close()
    assert rest == b"" and err is None, f"unexpected {rest[:40]!r} / {err!r} after the origin's FIN"
    assert done.wait(20), "origin did not finish"
    assert not o.errors, f"origin failed: {o.errors!r}"
    assert got == res["sent"], f"client got {got}, origin sent {res['sent']}"
    assert res["got"] == sent, f"after its half-close the origin got {res['got']}, client sent {sent}"
    _, d = p.conn_events(cport, "::1")
    check_record(d, Status=200, Event="disconnect", ClientBytes=n, OriginBytes=m)


def test_short_exchanges_and_bulk_switches(prism, origins, ports):
    """Messages around the 16 KiB copy buffer: short ones take the recv/send path,
    full ones switch the direction to splice and back. Every round trip must come
    back whole and in order."""
    echo = origins.echo()
    eport = ports()
    p = prism(edge_cfg([app("pingpong", f"tcp/{eport}", echo.addr)]))
    s = connect("127.0.0.1", eport, timeout=10)
    cport = s.getsockname()[1]
    sizes = [1, 64, 1000, 16383, 16384, 16385, 40000, 64, 1, 200000, 7, 16384 * 3, 2]
    total = 0
    for rnd in range(20):
        for i, size in enumerate(sizes):
            msg = bytes([(rnd * 31 + i + k) & 0xFF for k in range(min(size, 256))]) * (size // 256 + 1)
            msg = msg[:size]
            s.sendall(msg)
            assert recv_exact(s, size) == msg, f"round {rnd}: a {size}-byte message came back changed"
            total += size
    s.shutdown(socket.SHUT_WR)
    rest, err = recv_until_eof(s)
    s.close()
    assert rest == b"" and err is None, f"after the exchanges: {rest[:40]!r} / {err!r}"
    _, d = p.conn_events(cport)
    check_record(d, Status=200, Event="disconnect", ClientBytes=total, OriginBytes=total)


def test_data_and_fin_together_are_both_passed_on(prism, origins, ports):
    """A short request followed at once by the client's FIN often arrives in one
    wakeup: the short read must not hide the EOF behind it."""
    res = []
    lock = threading.Lock()

    def origin(conn, peer, server):
        conn.settimeout(10)
        got, _ = recv_stream(conn)  # to EOF
        conn.sendall(b"%d\n" % got)
        conn.close()
        with lock:
            res.append(got)

    o = origins.scripted(origin)
    eport = ports()
    prism(edge_cfg([app("fin", f"tcp/{eport}", o.addr)]))
    for i in range(200):
        s = connect("127.0.0.1", eport, timeout=10)
        s.sendall(b"x" * (1 + i % 90))
        s.shutdown(socket.SHUT_WR)
        answer, err = recv_until_eof(s)
        s.close()
        assert err is None and answer == b"%d\n" % (1 + i % 90), f"connection {i}: got {answer!r} / {err!r}"
    assert not o.errors, f"origin failed: {o.errors!r}"


# ---------------------------------------------------------------------------------
# bounded memory and idle timeout


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_backpressure_when_origin_stops_reading(prism, origins, ports):
    """An origin that never reads: prism must stop reading the client, so what the
    client can push is bounded by socket buffers, not by prism's memory."""
    release = threading.Event()

    def origin(conn, peer, server):  # reads nothing until released
        release.wait(30)
        conn.settimeout(10)
        with_data = 0
        while True:
            d = conn.recv(1 << 20)
            if not d:
                break
            with_data += len(d)
        server.drained = with_data
        conn.close()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(edge_cfg([app("bp", f"tcp/{eport}", o.addr)]))
    rss0 = rss_kib(p.pid)
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    s.setblocking(False)
    chunk = b"b" * 65536
    pushed = 0
    idle_since = time.monotonic()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and time.monotonic() - idle_since < 1.0 and pushed < (256 << 20):
        try:
            pushed += s.send(chunk)
            idle_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    grown = rss_kib(p.pid) - rss0
    assert pushed < (64 << 20), f"the client pushed {pushed >> 20} MiB into a stalled origin: prism keeps reading"
    assert grown < 32 * 1024, f"prism's RSS grew by {grown} KiB holding a stalled connection"
    # everything buffered still arrives once the origin reads again
    release.set()
    s.setblocking(True)
    s.shutdown(socket.SHUT_WR)
    rest, err = recv_until_eof(s, timeout=15)
    s.close()
    assert err is None and rest == b"", f"{rest[:20]!r} {err!r}"
    _, d = p.conn_events(cport)
    check_record(d, Status=200, ClientBytes=pushed, OriginBytes=0)
    assert getattr(o, "drained", None) == pushed, f"origin got {getattr(o, 'drained', None)} of {pushed} bytes"


def test_idle_timeout_closes_quiet_connection(prism, origins, ports):
    echo = origins.echo()
    eport = ports()
    p = prism(edge_cfg([app("idle", f"tcp/{eport}", echo.addr)], idle_ms=500))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    for i in range(4):  # activity keeps it open past idle_ms
        if i:
            time.sleep(0.2)
        s.sendall(b"tick")
        assert recv_exact(s, 4) == b"tick"
    t0 = time.monotonic()  # the last activity
    data, err = recv_until_eof(s, timeout=10)  # then silence: prism closes it
    waited = time.monotonic() - t0
    s.close()
    assert data == b"", f"unexpected bytes {data!r}"
    assert waited >= 0.25, f"closed after {waited:.2f}s of silence, well before idle_ms=500"
    _, d = p.conn_events(cport)
    check_record(d, Application="idle", ClientBytes=16, OriginBytes=16)


# ---------------------------------------------------------------------------------
# what a connection costs in syscalls, and the keepalive it gets when it lasts


def traced_threads(pid):
    """Whether every thread of <pid> has a tracer attached."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            if not any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f):
                return False
    return True


def one_worker_under_strace(prism, procs, tmp_path, app_id, eport, origin_addr, syscalls, *opts, netns=None):
    """prism with one worker and one app on 127.0.0.1:<eport> (in <netns> if given), with
    strace attached to every thread, writing the calls in <syscalls> to a file. Returns
    (prism, tracer, path of the strace output); SIGINT to the tracer detaches it."""
    cfg = edge_cfg([app(app_id, f"tcp/{eport}", origin_addr)], edges=("127.0.0.1",))
    cfg["workers"] = 1
    p = prism(cfg, netns=netns)
    out = tmp_path / "strace.out"
    tracer = procs.spawn(
        ["strace", "-f", "-qq", *opts, "-o", str(out), "-e", f"trace={syscalls}", "-p", str(p.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: traced_threads(p.pid), timeout=10, msg="strace to attach to every prism thread")
    return p, tracer, out


def short_exchange(eport, payload=b"q" * 64, sock=None):
    """One short connection through prism's 127.0.0.1:<eport> to an echo origin (from
    <sock>, if given): the payload each way, then the client closes first. Returns the
    client's port."""
    s = connect("127.0.0.1", eport, sock=sock)
    cport = s.getsockname()[1]
    s.sendall(payload)
    assert recv_exact(s, len(payload)) == payload
    s.shutdown(socket.SHUT_WR)
    rest, err = recv_until_eof(s)
    assert rest == b"" and err is None, f"after the echo: {rest[:40]!r} {err!r}"
    s.close()
    return cport


def test_short_connections_reuse_one_origin_socket(prism, origins, ports, procs, tmp_path):
    """50 short connections one after the other (64 bytes each way, the client closes
    first), with strace on prism. Each ends with our FIN to the origin by shutdown()
    and the origin's FIN read, so its origin socket is left in state CLOSE and the next
    connection reuses it: one socket() and two setsockopt (TCP_NODELAY, and SO_REUSEADDR
    for a loopback origin; the keepalive options wait until a connection lasts; a third,
    TCP_CONGESTION, where the default congestion control is BBR) for all 50, a
    connect(AF_UNSPEC) as each socket goes back to the pool (the last one too),
    one shutdown per connection (the client's FIN comes with close()), and the counters
    say so. The origin is on loopback, so the socket keeps its port: a bind to port 0
    and a getsockname before its first connect, a bind to that port as it first comes
    back, and the origin sees all 50 connections come from that one port, each taking
    over the TIME_WAIT entry of the one before. Before ports were kept: 50 ports, each
    found by a search of the ephemeral range; before origin sockets were pooled: 50
    socket() and 50 setsockopt; before that, 6 setsockopt and 2 shutdown per
    connection."""
    n = 50
    echo = origins.echo()
    eport = ports(hosts=("127.0.0.1",))
    p, tracer, out = one_worker_under_strace(
        prism, procs, tmp_path, "sc", eport, echo.addr, "socket,connect,setsockopt,shutdown,close,bind,getsockname"
    )
    cports = [short_exchange(eport) for _ in range(n)]
    recs = p.events(2 * n, where=lambda r: r.get("Application") == "sc", timeout=10)
    closing = [r for r in recs if r["Event"] != "connect"]
    assert sorted(r["ClientPort"] for r in closing) == sorted(cports)
    assert all(r["Status"] == 200 for r in closing), f"not all ended with 200: {closing}"
    assert all(r["OriginPort"] == echo.port for r in closing)
    tracer.send_signal(signal.SIGINT)  # strace detaches and exits
    tracer.wait(10)
    m = http_metrics(p)
    assert m is not None, "no /metrics"
    assert m["prism_tcp_origin_sockets_opened_total"] == 1, f"origin sockets not reused: {m}"
    assert m["prism_tcp_origin_sockets_reused_total"] == n - 1, f"origin sockets not reused: {m}"
    assert len(echo.peers) == n, f"the origin saw {len(echo.peers)} connections for {n}"
    assert m["prism_tcp_origin_ports_taken_total"] == 0, f"{m}"
    assert len({peer[1] for peer in echo.peers}) == 1, f"the port was not kept: {sorted({p[1] for p in echo.peers})}"
    lines = out.read_text().splitlines()
    calls = {
        name: [x for x in lines if re.search(rf"\b{name}\(", x)]
        for name in ("socket", "connect", "setsockopt", "shutdown", "close", "bind", "getsockname")
    }
    tcp_sockets = [x for x in calls["socket"] if "SOCK_STREAM" in x]
    unspec = [x for x in calls["connect"] if "AF_UNSPEC" in x]
    assert len(tcp_sockets) == 1, f"{len(tcp_sockets)} TCP socket() calls for {n} connections: {tcp_sockets[:5]}"
    assert len(unspec) == n, f"{len(unspec)} connect(AF_UNSPEC) calls for {n} sockets returned to the pool"
    # TCP_CONGESTION too when the machine's default is BBR (reno for a loopback origin)
    with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
        is_bbr = f.read().startswith("bbr")
    want = ["TCP_NODELAY"] + (["TCP_CONGESTION"] if is_bbr else []) + ["SO_REUSEADDR"]
    assert len(calls["setsockopt"]) == len(want), (
        f"{len(calls['setsockopt'])} setsockopt calls for {n} connections: " + "\n".join(calls["setsockopt"][:12])
    )
    assert all(opt in call for opt, call in zip(want, calls["setsockopt"])), calls["setsockopt"]
    kept = echo.peers[0][1]
    binds = [x for x in calls["bind"] if "AF_INET" in x and "sin_port=htons(" in x]
    assert len(binds) == 2, f"binds of the origin socket: {binds}"
    assert "sin_port=htons(0)" in binds[0] and f"sin_port=htons({kept})" in binds[1], binds
    assert len(calls["getsockname"]) == 1, f"getsockname calls: {calls['getsockname']}"
    assert len(calls["shutdown"]) == n, f"{len(calls['shutdown'])} shutdown calls for {n} connections"
    assert len(calls["close"]) >= n, f"strace saw {len(calls['close'])} close() calls for {n} connections"


def test_no_port_is_kept_without_tcp_timestamps(prism, origins, procs, tmp_path, netns):
    """In a namespace with net.ipv4.tcp_timestamps=0 the kernel cannot take over a
    TIME_WAIT entry, so a kept port would only cost syscalls. The first connection's
    origin socket takes a port (a bind to port 0 and a getsockname); when it comes back
    without timestamps the worker stops keeping ports. 20 short connections then still
    share one origin socket, with 1 bind and 1 getsockname in all (before: one of each
    for every connection), and each connection comes from a port of the kernel's
    choosing, every one a different port."""
    n = 20
    ns = netns()
    ns.run(["sysctl", "-qw", "net.ipv4.tcp_timestamps=0"])
    echo = origins.echo(port=17011, sock_factory=ns.socket)
    eport = 17012
    p, tracer, out = one_worker_under_strace(
        prism, procs, tmp_path, "nt", eport, echo.addr, "socket,connect,bind,getsockname", netns=ns
    )
    cports = [short_exchange(eport, sock=ns.socket()) for _ in range(n)]
    recs = p.events(2 * n, where=lambda r: r.get("Application") == "nt", timeout=10)
    closing = [r for r in recs if r["Event"] != "connect"]
    assert sorted(r["ClientPort"] for r in closing) == sorted(cports)
    assert all(r["Status"] == 200 for r in closing), f"not all ended with 200: {closing}"
    tracer.send_signal(signal.SIGINT)  # strace detaches and exits
    tracer.wait(10)
    assert len(echo.peers) == n, f"the origin saw {len(echo.peers)} connections for {n}"
    assert len({peer[1] for peer in echo.peers}) == n, f"ports reused without timestamps: {echo.peers}"
    lines = out.read_text().splitlines()
    tcp_sockets = [x for x in lines if re.search(r"\bsocket\(", x) and "SOCK_STREAM" in x]
    unspec = [x for x in lines if re.search(r"\bconnect\(", x) and "AF_UNSPEC" in x]
    binds = [x for x in lines if re.search(r"\bbind\(", x) and "sin_port=htons(" in x]
    names = [x for x in lines if re.search(r"\bgetsockname\(", x)]
    assert len(tcp_sockets) == 1, f"{len(tcp_sockets)} TCP socket() calls for {n} connections: {tcp_sockets[:5]}"
    assert len(unspec) == n, f"{len(unspec)} connect(AF_UNSPEC) calls for {n} sockets returned to the pool"
    assert len(binds) == 1 and "sin_port=htons(0)" in binds[0], f"binds of the origin socket: {binds[:5]}"
    assert len(names) == 1, f"getsockname calls: {names[:5]}"


def test_reused_origin_socket_sends_each_connection_its_own_proxy_header(prism, origins, ports):
    """A PROXY v2 app, 20 short connections in turn from different client ports: each
    reaches the origin through the same pooled socket (after the first), and each
    connection's header, first on its stream, carries that connection's client port."""
    n = 20
    seen = []

    def origin(conn, peer, server):
        hdr = read_pp_header(conn)
        data = recv_exact(conn, 5)
        seen.append((hdr, data))
        conn.sendall(data)
        conn.settimeout(10)
        while conn.recv(4096):
            pass
        conn.close()

    o = origins.scripted(origin)
    eport = ports(hosts=("127.0.0.1",))
    cfg = edge_cfg([app("ppr", f"tcp/{eport}", o.addr, pp="v2")], edges=("127.0.0.1",))
    cfg["workers"] = 1
    p = prism(cfg)
    cports = [short_exchange(eport, b"hello") for _ in range(n)]
    assert len(seen) == n
    for (hdr, data), cport in zip(seen, cports):
        check_v2(hdr, "127.0.0.1", cport, "127.0.0.1", eport)
        assert data == b"hello"
    m = http_metrics(p)
    assert m["prism_tcp_origin_sockets_reused_total"] == n - 1, f"origin sockets not reused: {m}"


def test_origin_sockets_are_not_reused_after_a_reset_or_an_origin_closing_first(prism, origins, ports):
    """Only a connection that ended with our FIN sent by shutdown() and the origin's
    read leaves a socket to reuse. An origin that closes first (its FIN before ours:
    our FIN goes with close(), unacknowledged) and one that resets the connection
    leave none: each of their connections opens a socket of its own, and every
    connection still gets its bytes and the status it should."""
    n = 5

    def closes_first(conn, peer, server):
        conn.sendall(b"bye")
        conn.close()

    def resets(conn, peer, server):
        recv_exact(conn, 1)
        set_rst_on_close(conn)
        conn.close()

    first, rst = origins.scripted(closes_first), origins.scripted(resets)
    e1, e2 = ports(hosts=("127.0.0.1",)), ports(hosts=("127.0.0.1",))
    cfg = edge_cfg([app("cf", f"tcp/{e1}", first.addr), app("rs", f"tcp/{e2}", rst.addr)], edges=("127.0.0.1",))
    cfg["workers"] = 1
    p = prism(cfg)
    for _ in range(n):
        s = connect("127.0.0.1", e1)
        data, err = recv_until_eof(s)
        assert data == b"bye" and err is None, f"{data!r} {err!r}"
        s.close()
    ports_rs = []
    for _ in range(n):
        s = connect("127.0.0.1", e2)
        ports_rs.append(s.getsockname()[1])
        s.sendall(b"x")
        data, err = recv_until_eof(s)
        s.close()
        assert data == b"", f"{data!r}"
    recs = p.events(4 * n, where=lambda r: r.get("Application") in ("cf", "rs"), timeout=10)
    ends = [r for r in recs if r["Event"] != "connect"]
    assert sorted(r["Status"] for r in ends if r["Application"] == "cf") == [200] * n
    assert sorted(r["Status"] for r in ends if r["Application"] == "rs") == [444] * n
    m = http_metrics(p)
    assert m["prism_tcp_origin_sockets_reused_total"] == 0, f"an origin socket was reused: {m}"
    assert m["prism_tcp_origin_sockets_opened_total"] == 2 * n, f"{m}"


def stream_to_origin(p, eport, o, res, seed, total):
    """Sends <total> bytes through prism's 127.0.0.1:<eport> to the scripted origin <o>,
    whose script puts (bytes, sha256) in res["got"] at EOF; half-closes, and checks that
    prism closes too, that every byte arrived and the event record. Returns the client's
    port."""
    s = connect("127.0.0.1", eport, timeout=60)
    cport = s.getsockname()[1]
    sent = send_stream(s, seed, total)
    s.shutdown(socket.SHUT_WR)
    rest, err = recv_until_eof(s, timeout=60)
    s.close()
    assert rest == b"" and err is None, f"{rest[:20]!r} {err!r}"
    wait_until(lambda: "got" in res, timeout=30, msg="the origin to read to EOF")
    assert not o.errors, f"origin failed: {o.errors!r}"
    assert res["got"] == sent, f"sent {sent}, the origin got {res['got']}"
    _, d = p.conn_events(cport, timeout=10)
    check_record(d, Status=200, ClientBytes=total, OriginBytes=0)
    return cport


def echo_messages(eport, n):
    """<n> 64-byte messages, one at a time, through prism's 127.0.0.1:<eport> to an echo."""
    s = connect("127.0.0.1", eport)
    for i in range(n):
        msg = i.to_bytes(2, "big") * 32
        s.sendall(msg)
        assert recv_exact(s, 64) == msg, f"message {i} came back changed"
    s.close()


SPLICE_LINE = re.compile(r"splice\(\d+<(.*?\])>, NULL, \d+<(.*?\])>, NULL, (\d+), [^)]*\) = (-?\d+)")


def test_bulk_splices_let_the_pipe_decide_how_much_comes(prism, origins, ports, procs, tmp_path):
    """8 MiB from the client to an origin that reads slowly, with strace on prism. Every
    splice from the client's socket into a pipe asks for more than a pipe holds, so the
    pipe's free slots decide how much comes: asking for a byte count cut the socket's
    fragments into pieces, and the origin paid for it when it read them. And a splice
    into the pipe never follows one that moved bytes unless a splice out of the pipe
    made room in between: such a call finds the socket empty or the pipe full. Every
    byte still arrives, in order."""
    total = 8 << 20
    res = {}

    def origin(conn, peer, server):  # slow: 16 KiB, then a pause, so the pipe fills
        conn.settimeout(30)
        h, n = hashlib.sha256(), 0
        while True:
            d = conn.recv(16384)
            if not d:
                break
            h.update(d)
            n += len(d)
            time.sleep(0.0005)
        res["got"] = (n, h.hexdigest())
        conn.close()

    o = origins.scripted(origin)
    eport = ports(hosts=("127.0.0.1",))
    p, tracer, out = one_worker_under_strace(prism, procs, tmp_path, "sp", eport, o.addr, "splice", "-yy")
    cport = stream_to_origin(p, eport, o, res, 3003, total)
    tracer.send_signal(signal.SIGINT)  # strace detaches and exits
    tracer.wait(10)
    client_sock = f":{eport}->127.0.0.1:{cport}]"
    calls = []  # ("in" | "out", asked, returned) for the client -> origin direction, in order
    lines = out.read_text().splitlines()
    for line in lines:
        m = SPLICE_LINE.search(line)
        if not m:
            continue
        src, dst, asked, ret = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        if client_sock in src and dst.startswith("pipe:"):
            calls.append(("in", asked, ret))
        elif src.startswith("pipe:") and f"->127.0.0.1:{o.port}]" in dst:
            calls.append(("out", asked, ret))
    ins = [c for c in calls if c[0] == "in"]
    assert len(ins) >= 20, f"only {len(ins)} splices from the client's socket for 8 MiB: {lines[:6]}"
    small = [c for c in ins if c[1] <= 65536]
    assert not small, f"{len(small)} of {len(ins)} splices into a pipe asked for at most 64 KiB: {small[:5]}"
    wasted, moved = [], False
    for i, (kind, _, ret) in enumerate(calls):
        if kind == "out" and ret > 0:
            moved = False
        elif kind == "in":
            if moved:
                wasted.append(i)
            moved = ret > 0
    assert not wasted, f"{len(wasted)} splices into a full pipe with no splice out before them, e.g. at {wasted[:5]}"


def test_bulk_stream_grows_its_pipe_and_busy_polls_briefly(prism, origins, ports):
    """One worker with busy polling on (the default). 300 echoed 64-byte messages never
    make the worker shorten its busy poll nor grow a pipe, and every byte of them goes
    through recv() and send() (prism_tcp_copied_bytes_total). Then 64 MiB to an origin
    that keeps up: the stream fills its pipe as fast as the origin drains it, so the pipe
    is grown (prism_tcp_pipes_grown), and it reads faster than 64 KiB per millisecond, so
    the worker's waits after it moved busy poll only briefly (prism_busy_poll_brief_total)
    and, each time the worker has drained the client's socket, its next read is a splice
    again rather than a copy: of the 64 MiB, only the reads before the stream was seen
    streaming are copied. Every byte arrives, in order. Echoes on a new connection
    afterwards get the whole adaptive window again, and are copied again."""
    total = 64 << 20
    res = {}

    def sink(conn, peer, server):
        conn.settimeout(30)
        h, n = hashlib.sha256(), 0
        while True:
            d = conn.recv(1 << 18)
            if not d:
                break
            h.update(d)
            n += len(d)
        res["got"] = (n, h.hexdigest())
        conn.close()

    echo = origins.echo()
    o = origins.scripted(sink)
    eport, sport = ports(hosts=("127.0.0.1",)), ports(hosts=("127.0.0.1",))
    cfg = edge_cfg([app("pp", f"tcp/{eport}", echo.addr), app("bk", f"tcp/{sport}", o.addr)], edges=("127.0.0.1",))
    cfg["workers"] = 1
    p = prism(cfg)

    echo_messages(eport, 300)
    m = http_metrics(p)
    assert m is not None, "no /metrics"
    assert m["prism_busy_poll_brief_total"] == 0, f"an interactive exchange shortened the busy poll: {m}"
    assert "prism_busy_poll_contended_total" in m, f"no count of waits that did not spin on a shared CPU: {m}"
    assert m["prism_tcp_pipes_grown"] == 0, f"an interactive exchange grew a pipe: {m}"
    echoed = 300 * 64 * 2  # each message once each way
    assert m["prism_tcp_copied_bytes_total"] == echoed, f"short exchanges were not all copied: {m}"

    stream_to_origin(p, sport, o, res, 4004, total)
    m = http_metrics(p)
    assert m["prism_tcp_pipes_grown"] == 1, f"the bulk stream's pipe was not grown (or more than one): {m}"
    assert m["prism_busy_poll_brief_total"] > 0, f"the bulk stream never made the worker shorten its busy poll: {m}"
    copied = m["prism_tcp_copied_bytes_total"] - echoed
    # Until a millisecond in which it read 64 KiB (or a read filled the 16 KiB buffer),
    # a direction copies; a streaming one stays spliced after it drains its source.
    assert copied <= 256 << 10, f"{copied} of the stream's {total} bytes were copied, not spliced: {m}"

    briefs = m["prism_busy_poll_brief_total"]
    echo_messages(eport, 300)  # interactive again, on the same worker
    m = http_metrics(p)
    assert m["prism_busy_poll_brief_total"] == briefs, f"echoes after the stream shortened the busy poll: {m}"
    assert m["prism_tcp_copied_bytes_total"] == echoed * 2 + copied, f"echoes after the stream were not copied: {m}"


def ss_established(flt):
    return subprocess.run(
        ["ss", "-tnoH", "state", "established", flt], capture_output=True, text=True, check=True, timeout=10
    ).stdout


def test_origin_socket_gets_keepalive_once_the_connection_lasts(prism, origins, ports):
    """Dead-peer detection: the client socket has keepalive from accept on (inherited
    from the listener, first probe after half of timeouts.user_timeout_ms); prism's
    socket to the origin gets it once the connection has lived about a second."""
    echo = origins.echo()
    eport = ports(hosts=("127.0.0.1",))
    p = prism(edge_cfg([app("ka", f"tcp/{eport}", echo.addr)], edges=("127.0.0.1",), user_timeout_ms=30000))
    t0 = time.monotonic()
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    s.sendall(b"k")
    assert recv_exact(s, 1) == b"k"
    client_side = ss_established(f"( sport = :{eport} and dport = :{cport} )")
    origin_side = ss_established(f"( dport = :{echo.port} )")
    early = time.monotonic() - t0 < 0.5
    m = re.search(r"timer:\(keepalive,(\d+)sec", client_side)
    assert m and int(m.group(1)) <= 15, f"prism's client socket has no keepalive of at most 15 s: {client_side!r}"
    assert origin_side.strip(), "no socket from prism to the origin"
    if early:
        assert "keepalive" not in origin_side, f"keepalive on the origin socket at once: {origin_side!r}"
    wait_until(
        lambda: re.search(r"timer:\(keepalive,(\d+)sec", ss_established(f"( dport = :{echo.port} )")),
        timeout=5,
        msg="keepalive on prism's origin socket",
    )
    m = re.search(r"timer:\(keepalive,(\d+)sec", ss_established(f"( dport = :{echo.port} )"))
    assert int(m.group(1)) <= 15, "the origin socket's first keepalive probe is later than 15 s"
    s.sendall(b"still")
    assert recv_exact(s, 5) == b"still"
    s.close()
    _, d = p.conn_events(cport)
    check_record(d, Application="ka", Status=200)


def test_tiny_user_timeout_still_gets_keepalive_and_idle_timeout(prism, origins, ports):
    """timeouts.user_timeout_ms under 8: an eighth of it rounds to 0 ms, a wait that
    would stop the relay timer; the keepalive is due after 1 ms instead, so the origin
    socket still gets its options, and the idle timeout on the same timer still closes
    a quiet connection."""
    echo = origins.echo()
    eport = ports(hosts=("127.0.0.1",))
    p = prism(edge_cfg([app("tiny", f"tcp/{eport}", echo.addr)], edges=("127.0.0.1",), user_timeout_ms=7, idle_ms=500))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    s.sendall(b"t")
    assert recv_exact(s, 1) == b"t"
    wait_until(
        lambda: "keepalive" in ss_established(f"( dport = :{echo.port} )"),
        timeout=3,
        msg="keepalive on prism's origin socket with user_timeout_ms 7",
    )
    data, err = recv_until_eof(s, timeout=10)
    s.close()
    assert data == b"", f"unexpected bytes {data!r}"
    _, d = p.conn_events(cport)
    check_record(d, Application="tiny", Status=200)


def origin_socket_cc(ns, origin_port):
    """(congestion control, inode) of the one established socket in <ns> whose peer
    is port <origin_port>: prism's origin socket (the origin's own has it as its source)."""
    out = ns.run(["ss", "-tieHn", "state", "established", f"( dport = :{origin_port} )"]).stdout
    ccs = re.findall(r"\s(reno|cubic|bbr\d?)\s", out)  # not "bbr:(bw:...)"
    inos = re.findall(r"\bino:(\d+)", out)
    assert len(ccs) == 1 and len(inos) == 1, f"want one socket to port {origin_port}:\n{out}"
    return ccs[0], inos[0]


def test_loopback_origin_sockets_are_not_paced(prism, origins, netns):
    """In a namespace whose default congestion control is BBR (which paces every send
    with timers), prism's socket to a loopback origin uses reno, and its socket to an
    origin on another local address keeps the default; a pooled socket that served the
    loopback origin is switched back when it next serves the other one. Timestamps are
    off in the namespace, so origin sockets keep no port and one socket serves both."""
    ns = netns()
    if "bbr" not in ns.run(["cat", "/proc/sys/net/ipv4/tcp_available_congestion_control"]).stdout.split():
        pytest.skip("this kernel has no BBR")
    ns.run(["sysctl", "-qw", "net.ipv4.tcp_congestion_control=bbr"])
    ns.run(["sysctl", "-qw", "net.ipv4.tcp_timestamps=0"])
    ns.run(["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"])
    local = origins.echo("127.0.0.1", port=17021, sock_factory=ns.socket)
    other = origins.echo("10.99.0.1", port=17022, sock_factory=ns.socket)
    cfg = edge_cfg(
        [app("lo", "tcp/17023", local.addr), app("other", "tcp/17024", other.addr)], edges=("127.0.0.1",)
    )
    cfg["workers"] = 1
    prism(cfg, netns=ns)

    a = connect("127.0.0.1", 17023, sock=ns.socket())
    assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0") == b"bbr"
    a.sendall(b"ping")
    assert recv_exact(a, 4) == b"ping"
    cc_a, ino_a = origin_socket_cc(ns, 17021)
    assert cc_a == "reno", f"prism's socket to a loopback origin uses {cc_a}"
    a.shutdown(socket.SHUT_WR)  # the client closes first: the origin socket goes back clean
    assert recv_until_eof(a) == (b"", None)
    a.close()

    b = connect("127.0.0.1", 17024, sock=ns.socket())
    b.sendall(b"pong")
    assert recv_exact(b, 4) == b"pong"
    cc_b, ino_b = origin_socket_cc(ns, 17022)
    assert ino_b == ino_a, "the origin socket was not reused; nothing switched back"
    assert cc_b == "bbr", f"prism's socket to 10.99.0.1 uses {cc_b}, not the namespace's default"
    b.close()

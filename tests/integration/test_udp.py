"""UDP apps (issue 4): flows per client, Simple Proxy Protocol both ways, PROXY v2 on
the first datagram of a flow, idle expiry, ICMP port unreachable, reply source
addresses, maximum datagram sizes, port ranges; with dnsmasq and iperf3 as real
origins. Every flow is checked against the event log.

Only 127.0.0.0/8 and ::1. Every process is started through the procs/prism fixtures
(killed by PID at teardown); every wait has a timeout."""

import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import SANITIZED, Thread, app, check_record, prism_cli, wait_until
from udp_helpers import (
    PP2_SIG,
    SPP_LEN,
    SPP_MAGIC,
    UdpOrigins,
    count_events,
    events_size,
    counters,
    decode_pp2,
    dig,
    echo,
    fd_count,
    parse_ts,
    recv_or_none,
    rss_kib,
    spp_header,
    start_dnsmasq,
    udp_app,
    udp_cfg,
    udp_client,
    udp_flow_events,
    v6bytes,
)

IDLE_MS = 1000
QUIET = 0.4  # how long "the client receives nothing" waits
RSS_SLACK_KIB = 2048  # RSS after 10,000 flows expired: at most this above the baseline


@pytest.fixture
def udp_origins():
    o = UdpOrigins()
    yield o
    o.close()


def loopback_of(client_ip):
    return client_ip  # a client on 127.0.0.1 talks to edge 127.0.0.1, ::1 to ::1


# ---------------------------------------------------------------------------------
# real origins: dnsmasq, iperf3


def test_dnsmasq_answers_through_prism_ipv4_and_ipv6_clients(prism, procs, ports, tmp_path):
    oport = ports(hosts=("127.0.0.1",))
    eport = ports()
    start_dnsmasq(procs, str(tmp_path), oport)
    p = prism(udp_cfg([udp_app("dns", eport, oport)], idle_ms=IDLE_MS))

    for client in ("127.0.0.1", "::1"):
        a = dig(client, eport, "test.example", "A")
        assert a == ["192.0.2.55"], f"dig @{client} -p {eport} test.example A through prism: {a!r}"
        aaaa = dig(client, eport, "test.example", "AAAA")
        assert aaaa == ["2001:db8::55"], f"dig @{client} -p {eport} test.example AAAA through prism: {aaaa!r}"

    # each dig is one flow (its own source port): 4 connect and 4 closing records
    recs = p.events(8, where=lambda r: r.get("Application") == "dns", timeout=IDLE_MS / 1000 + 5)
    closing = [r for r in recs if r["Event"] != "connect"]
    desc = "\n".join(json.dumps(r) for r in recs)
    assert len(recs) == 8 and len(closing) == 4, f"expected 4 flows (connect + disconnect each):\n{desc}"
    for r in closing:
        check_record(r, Event="disconnect", Status=200, ClientProto="udp", OriginProto="udp", OriginPort=oport)
        assert r["ClientBytes"] > 12 and r["OriginBytes"] > r["ClientBytes"], f"a DNS query and a longer answer: {r}"
    assert sorted(r["ClientIP"] for r in closing) == ["127.0.0.1", "127.0.0.1", "::1", "::1"], desc


def tcp_listening(port):
    """True when something listens on TCP port on 127.0.0.1 (read from /proc, so
    iperf3 -1 does not see a probe connection as its one client)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(ln.split()[1] == want and ln.split()[3] == "0A" for ln in f.readlines()[1:])


def test_iperf3_udp_through_prism_loss_and_event_bytes(prism, procs, ports, tmp_path):
    """iperf3 -u at 20 Mbit/s for 3 s (about 5,360 datagrams of 1,400 bytes). iperf3
    needs its TCP control connection too, so the edge port has a tcp and a udp app.

    Byte tolerance: prism's ClientBytes counts every datagram the client sent, which is
    iperf3's data (sum_sent.bytes) plus its UDP handshake: one 4-byte "connect"
    datagram, answered by one 4-byte reply (OriginBytes). We allow up to 64 bytes of
    such control datagrams each way, and on the receiving side the datagrams iperf3
    reports lost (< 0.1 %)."""
    oport = ports(hosts=("127.0.0.1",))
    eport = ports(hosts=("127.0.0.1",))
    srv_log = open(os.path.join(str(tmp_path), "iperf3-server.log"), "w")
    procs.spawn(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(oport)], stdout=srv_log, stderr=subprocess.STDOUT)
    wait_until(lambda: tcp_listening(oport), timeout=10, msg="iperf3 server to listen")
    p = prism(
        udp_cfg(
            [
                udp_app("iperf-udp", eport, oport),
                app("iperf-tcp", f"tcp/{eport}", f"tcp://127.0.0.1:{oport}"),
            ],
            idle_ms=IDLE_MS,
            edge=("127.0.0.1",),
        )
    )
    blk = 1400
    r = subprocess.run(
        ["iperf3", "-c", "127.0.0.1", "-p", str(eport), "-u", "-b", "20M", "-t", "3", "-l", str(blk), "-J"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, f"iperf3 client failed ({r.returncode}): {r.stdout[-2000:]} {r.stderr[-2000:]}"
    j = json.loads(r.stdout)
    sent, rcvd = j["end"]["sum_sent"], j["end"]["sum_received"]
    lport = j["start"]["connected"][0]["local_port"]
    print(
        f"iperf3: sent {sent['bytes']} B / {sent['packets']} dgrams, server received {rcvd['bytes']} B, "
        f"lost {rcvd['lost_packets']} ({rcvd['lost_percent']:.4f} %), client port {lport}"
    )
    assert sent["packets"] > 4000, f"iperf3 sent too little to judge loss: {sent}"
    assert rcvd["lost_percent"] < 0.1, f"loss through prism {rcvd['lost_percent']} % >= 0.1 %: {rcvd}"

    c, d = udp_flow_events(p, lport, "127.0.0.1", "iperf-udp", timeout=IDLE_MS / 1000 + 8)
    check_record(d, Application="iperf-udp", ClientProto="udp", OriginPort=oport, Event="disconnect", Status=200)
    print(f"event log: ClientBytes {d['ClientBytes']}, OriginBytes {d['OriginBytes']}")
    extra = d["ClientBytes"] - sent["bytes"]
    assert 0 <= extra <= 64, (
        f"ClientBytes {d['ClientBytes']} vs iperf3 sent {sent['bytes']}: {extra} bytes beyond the data "
        f"(expected the 4-byte handshake, at most 64)"
    )
    not_received = d["ClientBytes"] - rcvd["bytes"]
    assert 0 <= not_received <= 64 + rcvd["lost_packets"] * blk, (
        f"ClientBytes {d['ClientBytes']} vs iperf3 server received {rcvd['bytes']} "
        f"with {rcvd['lost_packets']} lost datagrams"
    )
    assert 4 <= d["OriginBytes"] <= 64, f"OriginBytes {d['OriginBytes']}: expected the 4-byte handshake reply"
    tcp = p.events(where=lambda r: r.get("Application") == "iperf-tcp")
    assert tcp and tcp[0]["ClientProto"] == "tcp", f"the control connection went through the tcp app: {tcp}"


# ---------------------------------------------------------------------------------
# Simple Proxy Protocol


@pytest.mark.parametrize("client_ip", ["127.0.0.1", "::1"])
def test_spp_exact_header_and_invalid_replies_dropped(prism, udp_origins, ports, client_ip):
    """The origin checks the exact 38 bytes of every datagram and answers according to
    the payload: valid header + payload, or replies that prism must drop (wrong
    magic, another client's address, another (live) client's port, an IPv4-compatible
    instead of IPv4-mapped address, 37 bytes, 0 bytes). The client receives only the
    payloads of valid replies, and nothing else."""
    other = {}  # filled below: the port of a second live client

    def origin(data, peer, sock):
        hdr, payload = data[:SPP_LEN], data[SPP_LEN:]
        cmd = payload.split(b":")[0]
        if cmd == b"good" or payload == b"":
            sock.sendto(hdr + payload, peer)
        elif cmd == b"bad-magic":
            sock.sendto(b"\x56\xed" + hdr[2:] + payload, peer)
        elif cmd == b"zero-magic":
            sock.sendto(b"\x00\x00" + hdr[2:] + payload, peer)
        elif cmd == b"wrong-ip":
            wrong = "127.0.0.2" if "." in client_ip else "::2"
            sock.sendto(hdr[:2] + v6bytes(wrong) + hdr[18:] + payload, peer)
        elif cmd == b"compat-ip":  # ::a.b.c.d (IPv4-compatible), not ::ffff:a.b.c.d
            sock.sendto(hdr[:2] + b"\x00" * 12 + hdr[14:] + payload, peer)
        elif cmd == b"other-port":
            sock.sendto(hdr[:34] + other["port"].to_bytes(2, "big") + hdr[36:] + payload, peer)
        elif cmd == b"short":
            sock.sendto(hdr[:37], peer)
        elif cmd == b"empty":
            sock.sendto(b"", peer)

    o = udp_origins(origin)
    eport = ports()
    p = prism(udp_cfg([udp_app("spp", eport, o.port, pp="simple")], idle_ms=IDLE_MS))
    edge = loopback_of(client_ip)

    a = udp_client((edge, eport))
    b = udp_client((edge, eport))
    aport, bport = a.getsockname()[1], b.getsockname()[1]
    other["port"] = bport

    # 1. exact header bytes, payload only back to the client
    a.send(b"good:1")
    assert recv_or_none(a, 3) == b"good:1", "client A: no (or a wrong) reply through an SPP origin"
    b.send(b"good:b")
    assert recv_or_none(b, 3) == b"good:b", "client B: no (or a wrong) reply through an SPP origin"
    got = o.wait(2)
    want_a = spp_header(client_ip, aport, edge, eport)
    want_b = spp_header(client_ip, bport, edge, eport)
    for (data, _), want, payload in ((got[0], want_a, b"good:1"), (got[1], want_b, b"good:b")):
        assert data[:SPP_LEN] == want, (
            f"SPP header:\n got  {data[:SPP_LEN].hex()}\n want {want.hex()}\n"
            f"(magic {SPP_MAGIC:#06x} | client {client_ip} mapped | proxy {edge} mapped | client port | edge port {eport})"
        )
        assert data[SPP_LEN:] == payload, f"payload after the header: {data[SPP_LEN:]!r}"
        assert len(data) == SPP_LEN + len(payload)

    # 2. invalid replies, then a valid one: UDP on loopback keeps order through one
    #    flow, so a leaked invalid reply would arrive before good:2
    bad = [b"bad-magic:x", b"zero-magic:x", b"wrong-ip:x", b"other-port:x", b"short:x", b"empty:x"]
    if "." in client_ip:
        bad.append(b"compat-ip:x")
    for cmd in bad:
        a.send(cmd)
    a.send(b"good:2")
    first = recv_or_none(a, 3)
    assert first == b"good:2", f"after {len(bad)} invalid replies the client received {first!r}, expected b'good:2'"
    assert recv_or_none(a, QUIET) is None, "client A received a datagram after good:2"
    assert recv_or_none(b, QUIET) is None, "client B received another client's reply (SPP header naming B)"

    # 3. zero-length payload: a 38-byte datagram each way, an empty datagram to the client
    a.send(b"")
    z = recv_or_none(a, 3)
    assert z == b"", f"zero-length payload: the client received {z!r}"
    got = o.wait(2 + len(bad) + 2)
    assert got[-1][0] == want_a, f"zero-length payload: the origin received {got[-1][0].hex()}"
    assert all(d[:SPP_LEN] == want_a for d, _ in got[2:]), "every datagram of flow A carries A's header"

    # 4. the event log: payload bytes from the client, every byte read from the origin
    sent_payload = len(b"good:1") + sum(len(c) for c in bad) + len(b"good:2")
    c, d = udp_flow_events(p, aport, client_ip, "spp", timeout=IDLE_MS / 1000 + 5)
    check_record(d, ClientIP=client_ip, ClientProto="udp", ProxyProtocol="simple", Event="disconnect", Status=200)
    assert d["ClientBytes"] == sent_payload, f"ClientBytes {d['ClientBytes']}, client payloads were {sent_payload}"
    # OriginBytes counts what prism read from the origin, dropped replies included
    replied = (SPP_LEN + 6) + sum(
        {b"short": 37, b"empty": 0}.get(cm.split(b":")[0], SPP_LEN + len(cm)) for cm in bad
    ) + (SPP_LEN + 6) + SPP_LEN
    assert d["OriginBytes"] == replied, f"OriginBytes {d['OriginBytes']}, the origin sent {replied} bytes to flow A"

    # 5. counted: every invalid reply is one drop
    m = counters(p)
    if m is None:
        print("NOTE: prism exposes no counters (no /metrics, no SIGUSR1 counter lines); drops asserted only")
    else:
        print({k: v for k, v in m.items() if k.startswith("prism_udp")})
        assert m.get("prism_udp_spp_dropped_total") == len(bad), (
            f"prism_udp_spp_dropped_total {m.get('prism_udp_spp_dropped_total')}, expected {len(bad)}"
        )
    a.close()
    b.close()


# ---------------------------------------------------------------------------------
# PROXY v2


@pytest.mark.parametrize("client_ip", ["127.0.0.1", "::1"])
def test_proxy_v2_header_on_first_datagram_only(prism, udp_origins, ports, client_ip):
    def origin(data, peer, sock):
        if data.startswith(PP2_SIG):
            data = decode_pp2(data).payload
        sock.sendto(data, peer)

    o = udp_origins(origin)
    eport = ports()
    p = prism(udp_cfg([udp_app("pp2", eport, o.port, pp="v2")], idle_ms=IDLE_MS))
    edge = loopback_of(client_ip)
    v4 = "." in client_ip

    a = udp_client((edge, eport))
    aport = a.getsockname()[1]
    for payload in (b"first", b"second", b"third"):
        a.send(payload)
        assert recv_or_none(a, 3) == payload, f"no echo of {payload!r} through a v2 app"
    b = udp_client((edge, eport))
    bport = b.getsockname()[1]
    b.send(b"other")
    assert recv_or_none(b, 3) == b"other"
    got = o.wait(4)

    for (data, _), port, payload in ((got[0], aport, b"first"), (got[3], bport, b"other")):
        h = decode_pp2(data)
        assert h.ver_cmd == 0x21, f"ver/cmd {h.ver_cmd:#04x}, expected 0x21 (v2 PROXY)"
        assert h.fam == (0x12 if v4 else 0x22), f"family/transport {h.fam:#04x}, expected UDP over INET{'' if v4 else '6'}"
        assert h.length == (12 if v4 else 36), f"length {h.length}: expected exactly the address block, no TLVs"
        assert (h.src, h.sport) == (client_ip, port), f"source {h.src}:{h.sport}, the client is {client_ip}:{port}"
        assert (h.dst, h.dport) == (edge, eport), f"destination {h.dst}:{h.dport}, the edge is {edge}:{eport}"
        assert h.payload == payload, f"payload after the header: {h.payload!r}"
    assert got[1][0] == b"second", f"second datagram of a flow must carry no header: {got[1][0][:40].hex()}"
    assert got[2][0] == b"third", f"third datagram of a flow must carry no header: {got[2][0][:40].hex()}"

    c, d = udp_flow_events(p, aport, client_ip, "pp2", timeout=IDLE_MS / 1000 + 5)
    check_record(d, ProxyProtocol="v2", ClientProto="udp", Status=200, ClientBytes=16, OriginBytes=16)
    a.close()
    b.close()


@pytest.mark.parametrize("pp", ["v2", "simple", "off"])
def test_bursts_from_one_client_keep_order_and_headers(prism, udp_origins, ports, pp):
    """A client that sends faster than prism wakes up has several datagrams in one
    receive batch; prism forwards such a run with one sendmmsg. Every datagram must
    still arrive once, in order, with exactly the header it is owed (SPP on each,
    PROXY v2 on the flow's first only), and every reply must come back."""
    def origin(data, peer, sock):
        if data.startswith(PP2_SIG):
            data = decode_pp2(data).payload
        sock.sendto(data, peer)  # SPP replies keep the header, as they must

    o = udp_origins(origin, rcvbuf=1 << 20)
    eport = ports()
    p = prism(udp_cfg([udp_app("burst", eport, o.port, pp=pp)], idle_ms=IDLE_MS))
    a = udp_client(("127.0.0.1", eport))
    aport = a.getsockname()[1]
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    n, burst = 320, 32  # bursts well inside the default socket buffers
    replies = []
    for start in range(0, n, burst):
        for i in range(start, start + burst):
            a.send(b"burst-%04d" % i)
        while len(replies) < start + burst:
            r = recv_or_none(a, 3)
            if r is None:
                break
            replies.append(r)
    got = [d for d, _ in o.wait(n, 5)]
    assert len(got) == n, f"the origin got {len(got)} of {n} datagrams"
    for i, data in enumerate(got):
        want = b"burst-%04d" % i
        if pp == "simple":
            assert data[:2] == SPP_MAGIC.to_bytes(2, "big") and data[SPP_LEN:] == want, f"datagram {i}: {data[:48].hex()}"
        elif pp == "v2" and i == 0:
            assert decode_pp2(data).payload == want, f"first datagram: {data[:48].hex()}"
        else:
            assert data == want, f"datagram {i} should be {want!r} without a header: {data[:48].hex()}"
    assert replies == [b"burst-%04d" % i for i in range(n)], f"{len(replies)} replies, first wrong: " + next(
        (f"{i}: {r!r}" for i, r in enumerate(replies) if r != b"burst-%04d" % i), "none"
    )
    _, d = udp_flow_events(p, aport, "127.0.0.1", "burst", timeout=IDLE_MS / 1000 + 5)
    check_record(d, Status=200, ClientBytes=10 * n, OriginBytes=(10 + (SPP_LEN if pp == "simple" else 0)) * n)
    a.close()


def test_proxy_v1_on_udp_app_is_refused_by_check_config(tmp_path, ports):
    base = {"data_dir": str(tmp_path / "data"), "api": {"listen": f"127.0.0.1:{ports()}"}}

    def check(pp):
        path = str(tmp_path / f"udp-{pp}.json")
        with open(path, "w") as f:
            json.dump(dict(base, apps=[udp_app("u1", 5300, 5301, pp=pp)]), f)
        return prism_cli("check-config", path, cwd=str(tmp_path))

    r = check("v1")
    out = r.stdout + r.stderr
    assert r.returncode == 2, f"check-config accepted proxy_protocol v1 on a UDP app (exit {r.returncode}): {out}"
    assert "proxy_protocol" in out, f"the message does not name proxy_protocol: {out!r}"
    assert "u1" in out, f"the message does not name the app: {out!r}"
    for pp in ("v2", "simple", "off"):
        r = check(pp)
        assert r.returncode == 0, f"check-config refused proxy_protocol {pp} on a UDP app: {r.stdout}{r.stderr}"


# ---------------------------------------------------------------------------------
# flows: expiry, many flows, cap


def test_flows_expire_after_idle_timeout_with_byte_counts(prism, udp_origins, ports):
    """Three flows: A goes quiet after three datagrams; B keeps talking every 0.4 s for
    2.4 s (longer than the 1 s idle timeout); C sends once and the origin keeps
    sending to it every 0.4 s. Each ends about 1 s after its last datagram either
    way, with the bytes each way in its disconnect record."""

    def origin(data, peer, sock):
        if data == b"stream-to-me":
            def later(i):
                sock.sendto(b"tick%d" % i, peer)

            for i in range(6):
                threading.Timer(0.4 * (i + 1), later, (i,)).start()
        else:
            sock.sendto(data, peer)

    o = udp_origins(origin)
    eport = ports(hosts=("127.0.0.1",))
    p = prism(udp_cfg([udp_app("exp", eport, o.port)], idle_ms=IDLE_MS, edge=("127.0.0.1",)))
    dest = ("127.0.0.1", eport)
    a, b, c = udp_client(dest), udp_client(dest), udp_client(dest)
    last = {}

    for n in (100, 200, 300):
        a.send(b"a" * n)
        assert recv_or_none(a, 3) == b"a" * n
    last["a"] = time.time()

    def talk_b():
        n = 0
        for i in range(7):
            b.send(b"b" * 10)
            assert recv_or_none(b, 3) == b"b" * 10, f"flow B: no echo of datagram {i}"
            n += 10
            if i < 6:
                time.sleep(0.4)
        last["b"] = time.time()
        return n

    tb = Thread(talk_b)
    tb.start()
    c.send(b"stream-to-me")
    ticks = []
    while len(ticks) < 6:
        t = recv_or_none(c, 2)
        assert t is not None, f"flow C: only {len(ticks)} of 6 origin datagrams arrived: {ticks}"
        ticks.append(t)
    last["c"] = time.time()
    b_sent = tb.join_result(10)

    port = {k: s.getsockname()[1] for k, s in zip("abc", (a, b, c))}
    want = {
        "a": (600, 600),
        "b": (b_sent, b_sent),
        "c": (len(b"stream-to-me"), sum(len(t) for t in ticks)),
    }
    for k in "abc":
        cr, d = udp_flow_events(p, port[k], "127.0.0.1", "exp", timeout=IDLE_MS / 1000 + 5)
        check_record(d, Event="disconnect", Status=200, ClientProto="udp", OriginProto="udp")
        assert (d["ClientBytes"], d["OriginBytes"]) == want[k], (
            f"flow {k}: (ClientBytes, OriginBytes) = {(d['ClientBytes'], d['OriginBytes'])}, expected {want[k]}"
        )
        idle = parse_ts(d["DisconnectTimestamp"]) - last[k]
        life = parse_ts(d["DisconnectTimestamp"]) - parse_ts(cr["ConnectTimestamp"])
        print(f"flow {k}: ended {idle:.3f} s after its last datagram, lived {life:.3f} s")
        assert IDLE_MS / 1000 - 0.1 <= idle <= IDLE_MS / 1000 + 0.6, (
            f"flow {k} ended {idle:.3f} s after its last datagram; udp_idle_ms is {IDLE_MS}"
        )
    for s in (a, b, c):
        s.close()


def make_flows(dest, n, payload_len=8, window=50, timeout=2.0):
    """n flows from n distinct client ports (sockets bound to port 0 on 127.0.0.1),
    window sockets at a time: each sends one datagram and reads its echo. A port the
    kernel hands out twice is skipped (that socket is held open until the end so it
    cannot come back). Returns (set of ports, resends)."""
    used, held = set(), []
    resends = 0
    try:
        while len(used) < n:
            batch = []
            while len(batch) < min(window, n - len(used)):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
                if port in used:
                    held.append(s)
                    continue
                used.add(port)
                s.connect(dest)
                batch.append((s, b"%0*d" % (payload_len, port)))
            for s, msg in batch:
                s.send(msg)
            for s, msg in batch:
                for attempt in range(3):
                    got = recv_or_none(s, timeout)
                    if got is not None:
                        break
                    resends += 1
                    s.send(msg)
                assert got == msg, f"flow from port {s.getsockname()[1]}: echo {got!r}, expected {msg!r}"
            for s, _ in batch:
                s.close()
    finally:
        for s in held:
            s.close()
    return used, resends


def test_10000_flows_expire_and_memory_returns_to_baseline(prism, udp_origins, ports):
    """10,000 distinct client ports create 10,000 flows (10,000 connected sockets in
    prism), which all expire with disconnect records carrying one datagram each way;
    prism's fds come back to their baseline exactly, and its RSS to within
    RSS_SLACK_KIB (2 MiB; 10 % of the baseline if that is more) of the baseline taken
    after a warm-up round of 1,000 flows. 10,000 flows cost about 7 MiB at their
    peak, so the bound asks for most of that back. prism gives freed memory back with
    malloc_trim every 5 s, so the check waits up to 8 s."""
    o = udp_origins(echo, keep=False, rcvbuf=4 << 20)
    eport = ports(hosts=("127.0.0.1",))
    p = prism(udp_cfg([udp_app("many", eport, o.port)], idle_ms=IDLE_MS, edge=("127.0.0.1",)))
    dest = ("127.0.0.1", eport)
    payload_len = 8

    def wait_expired(port_set, what, timeout, offset):
        state = {}

        def done():
            conn, disc, other, _, _ = count_events(p.events_path, "many", port_set, offset)
            state.update(connect=conn, disconnect=disc, other=other)
            assert other == 0, f"{what}: {other} records other than connect / disconnect 200"
            return conn == len(port_set) and disc == len(port_set)

        try:
            wait_until(done, timeout=timeout, interval=0.25, msg=f"{what}: {len(port_set)} connect and disconnect records")
        except AssertionError as e:
            m = counters(p) if p.alive() else None
            raise AssertionError(
                f"{e}; records found: {state}; prism alive: {p.alive()}; counters: {m}; log:\n{p.log_text(10)}"
            ) from None

    start = rss_kib(p.pid)
    t0 = time.monotonic()
    warm, _ = make_flows(dest, 1000, payload_len)
    wait_expired(warm, "warm-up", IDLE_MS / 1000 + 5, 0)
    time.sleep(5.5)  # let one malloc_trim run after the warm-up
    base_rss, base_fds = rss_kib(p.pid), fd_count(p.pid)

    offset = events_size(p.events_path)  # the warm-up's records are all written by now
    t1 = time.monotonic()
    used, resends = make_flows(dest, 10000, payload_len)
    made = time.monotonic() - t1
    peak_rss, peak_fds = rss_kib(p.pid), fd_count(p.pid)
    assert len(used) == 10000
    assert o.count >= 11000, f"the origin saw {o.count} datagrams for 11,000 flows"

    wait_expired(used, "10,000 flows", IDLE_MS / 1000 + 15, offset)
    expired = time.monotonic() - t1
    # the disconnect records carry each flow's one datagram each way
    with open(p.events_path, "rb") as f:
        f.seek(offset)
        bad = [
            ln
            for ln in f.read().split(b"\n")
            if b'"Event":"disconnect"' in ln
            and b'"Application":"many"' in ln
            and (f'"ClientBytes":{payload_len},'.encode() not in ln or f'"OriginBytes":{payload_len},'.encode() not in ln)
        ]
    assert not bad, f"{len(bad)} disconnect records without {payload_len} bytes each way, e.g. {bad[0][:300]!r}"

    allowed = max(RSS_SLACK_KIB, base_rss // 10)
    wait_until(lambda: fd_count(p.pid) <= base_fds, timeout=5, msg=f"prism's fds back to {base_fds} (now {fd_count(p.pid)})")
    deadline = time.monotonic() + 8
    while rss_kib(p.pid) > base_rss + allowed and time.monotonic() < deadline:
        time.sleep(0.25)
    after = rss_kib(p.pid)
    numbers = (
        f"RSS KiB: start {start}, baseline after a 1,000-flow warm-up {base_rss}, peak with 10,000 flows {peak_rss}, "
        f"after expiry {after} (allowed {base_rss + allowed}); fds {base_fds} -> {peak_fds} -> {fd_count(p.pid)}; "
        f"10,000 flows made in {made:.2f} s ({resends} resends), all expired {expired:.2f} s after the first; "
        f"whole test {time.monotonic() - t0:.1f} s"
    )
    print(numbers)
    # ASan holds freed memory in its quarantine, so under it only the fds come back.
    if not SANITIZED:
        assert after <= base_rss + allowed, f"prism's memory did not come back after 10,000 flows expired: {numbers}"
    assert peak_fds >= base_fds + 9000, f"prism held {peak_fds - base_fds} more fds with 10,000 flows (one socket each)"
    assert p.alive()


def test_flow_cap_refuses_new_clients_and_keeps_old_ones(prism, udp_origins, ports):
    """udp.max_flows_per_worker 2 with one worker: a third client gets nothing (and is
    counted), the first two keep working."""
    o = udp_origins(echo)
    eport = ports(hosts=("127.0.0.1",))
    cfg = udp_cfg([udp_app("cap", eport, o.port)], idle_ms=IDLE_MS, edge=("127.0.0.1",))
    cfg.update(workers=1, udp={"max_flows_per_worker": 2})
    p = prism(cfg)
    dest = ("127.0.0.1", eport)
    a, b, c = udp_client(dest), udp_client(dest), udp_client(dest)
    for s in (a, b):
        s.send(b"hi")
        assert recv_or_none(s, 3) == b"hi"
    c.send(b"refused?")
    assert recv_or_none(c, QUIET) is None, "a third flow past max_flows_per_worker 2 was served"
    for s in (a, b):
        s.send(b"still")
        assert recv_or_none(s, 3) == b"still", "an existing flow stopped working when the cap was reached"
    recs = p.events(4, where=lambda r: r.get("Application") == "cap", timeout=IDLE_MS / 1000 + 5)
    assert c.getsockname()[1] not in {r["ClientPort"] for r in recs}, f"the refused client got records: {recs}"
    m = counters(p)
    if m is None:
        print("NOTE: prism exposes no counters; refusal asserted only")
    else:
        assert m.get("prism_udp_flows_refused_total", 0) >= 1, f"no refused flow counted: {m}"
    for s in (a, b, c):
        s.close()


def all_stopped(pid):
    """Whether every thread of <pid> is stopped (state T): kill() returns before
    SIGSTOP has reached a thread that is running on another CPU."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                return False
    return True


@contextlib.contextmanager
def paused(p):
    """Prism stopped with SIGSTOP (every thread of it) for the block, then SIGCONT."""
    p.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: all_stopped(p.proc.pid), timeout=5, msg="prism to stop")
        yield
    finally:
        p.signal(signal.SIGCONT)


def edge_drops(port):
    """The drop counter /proc/net/udp keeps for the socket bound to 127.0.0.1:<port>."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        rows = [line.split() for line in list(f)[1:]]
    found = [int(r[-1]) for r in rows if r[1] == want]
    assert found, f"no UDP socket on 127.0.0.1:{port} in /proc/net/udp"
    return sum(found)


@pytest.mark.parametrize("rcvbuf", [None, 4096], ids=["default", "4096"])
def test_edge_socket_buffers_a_burst_while_the_worker_is_away(prism, udp_origins, ports, rcvbuf):
    """A worker away for a moment (here: prism stopped with SIGSTOP) must not cost
    datagrams: by default (udp.rcvbuf_bytes 1 MiB) a burst of 1,500 datagrams waits in
    the edge socket and all of them reach the origin after SIGCONT. The kernel's
    default buffer held 250 to 650 of them; udp.rcvbuf_bytes 4096 holds fewer still,
    and the kernel counts the rest as drops on prism's edge socket."""
    n = 1500
    o = udp_origins(None, rcvbuf=4 << 20)  # counts what arrives, answers nothing
    eport = ports(hosts=("127.0.0.1",))
    cfg = udp_cfg([udp_app("burst", eport, o.port)], idle_ms=10000, edge=("127.0.0.1",))
    cfg.update(workers=1)
    if rcvbuf is not None:
        cfg.update(udp={"rcvbuf_bytes": rcvbuf})
    p = prism(cfg)
    c = udp_client(("127.0.0.1", eport))
    c.send(b"x" * 64)  # the flow exists before the burst
    o.wait(1, timeout=5)
    drops0 = edge_drops(eport)
    with paused(p):
        for _ in range(n):
            c.send(b"y" * 64)
        drops = edge_drops(eport) - drops0
    c.close()
    if rcvbuf is None:
        assert drops == 0, f"the edge socket dropped {drops} of a {n}-datagram burst with the default udp.rcvbuf_bytes"
        # the origin's own buffer may be smaller than the burst: prism's count is the measure
        wait_until(lambda: (counters(p) or {}).get("prism_udp_datagrams_in_total", 0) >= 1 + n,
                   timeout=5, msg=f"prism to count {1 + n} datagrams sent to the origin")
    else:
        assert drops > n // 2, f"udp.rcvbuf_bytes {rcvbuf}: the edge socket dropped only {drops} of {n}"


def test_edge_buffer_capped_without_cap_net_admin_is_logged(prism, udp_origins, ports):
    """Without CAP_NET_ADMIN the kernel caps SO_RCVBUF at net.core.rmem_max: prism says
    so once, names the key and the size it got, and serves as usual."""
    with open("/proc/sys/net/core/rmem_max") as f:
        rmem_max = int(f.read())
    ask = min(rmem_max * 2, 256 << 20)
    if ask <= rmem_max:
        pytest.skip(f"net.core.rmem_max is {rmem_max}: nothing above it to ask for")
    o = udp_origins(echo)
    eport = ports(hosts=("127.0.0.1",))
    cfg = udp_cfg([udp_app("capped", eport, o.port)], edge=("127.0.0.1",))
    cfg.update(workers=2, udp={"rcvbuf_bytes": ask})
    p = prism(cfg, start=False)
    p.exec_prefix = ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--"]
    p.start()
    line = p.wait_log(r"udp\.rcvbuf_bytes", timeout=5, what="the warning about the capped buffer")
    assert f"udp.rcvbuf_bytes {ask}: the kernel gave {rmem_max}" in line, line
    with p.cond:
        n = sum("udp.rcvbuf_bytes" in x for x in p.lines)
    assert n == 1, f"warned {n} times for two sockets, not once"
    c = udp_client(("127.0.0.1", eport))
    c.send(b"capped")
    assert recv_or_none(c, 3) == b"capped"
    c.close()


# ---------------------------------------------------------------------------------
# GSO: a run of equal-sized datagrams leaves in one send

UDP_GRO = 104  # the socket option, and the type of the cmsg that carries the segment size


def gro_socket(bind=None, connect=None):
    """A UDP socket with UDP_GRO on: a GSO send that reaches it over loopback stays
    one datagram, with the segment size in a cmsg; separate datagrams stay apart."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(bind or ("127.0.0.1", 0))
    if connect:
        s.connect(connect)
    s.settimeout(3)
    return s


def recv_gro(s, timeout=3):
    """(data, peer, segment size or None) of the next datagram, None on timeout."""
    s.settimeout(timeout)
    try:
        data, anc, _, peer = s.recvmsg(70000, socket.CMSG_SPACE(4))
    except socket.timeout:
        return None
    seg = None
    for level, kind, value in anc:
        if level == socket.IPPROTO_UDP and kind == UDP_GRO:
            seg = int.from_bytes(value[:4], "little")
    return data, peer, seg


def cut(data, seg):
    """The datagrams of one received buffer with segment size <seg> (None: one)."""
    seg = seg or len(data)
    return [data[i : i + seg] for i in range(0, len(data), seg)] if data else [b""]


def drain_gro(s):
    """Every datagram waiting on s, cut at the segment sizes."""
    out = []
    while True:
        r = recv_gro(s, QUIET)
        if r is None:
            return out
        out += cut(r[0], r[2])


def gro_flow(prism, ports, app_id, pp):
    """prism (1 worker) with one UDP app in front of a UDP_GRO origin socket, and a
    UDP_GRO client whose flow, with its PROXY v2 header, already exists: (prism,
    client, origin, the flow's address as the origin sees it)."""
    o = gro_socket()
    eport = ports(hosts=("127.0.0.1",))
    cfg = udp_cfg([udp_app(app_id, eport, o.getsockname()[1], pp=pp)], idle_ms=10000, edge=("127.0.0.1",))
    cfg.update(workers=1)
    p = prism(cfg)
    c = gro_socket(connect=("127.0.0.1", eport))
    c.send(b"hello")
    first = recv_gro(o)
    assert first is not None, "the origin got nothing"
    return p, c, o, first[1]


@pytest.mark.parametrize("pp", ["v2", "simple", "off"])
def test_a_run_of_equal_datagrams_leaves_in_one_gso_send(prism, ports, pp):
    """Eight datagrams of 100 bytes from one client that wait in one receive batch
    go to the origin in one GSO send (UDP_SEGMENT), and eight replies of 100 bytes
    from the origin go back to the client in one: a receiver with UDP_GRO on gets
    each run as one datagram with the segment size (100, or 138 with the SPP header
    on each). Without GSO loopback delivers eight datagrams, and this fails. Prism
    is stopped (SIGSTOP) while the run queues, so that it is read in one batch."""
    p, c, o, flow_addr = gro_flow(prism, ports, "gso", pp)
    hl = SPP_LEN if pp == "simple" else 0
    run = [b"%03d" % i + bytes([65 + i]) * 97 for i in range(8)]

    with paused(p):
        for d in run:
            c.send(d)
    r = recv_gro(o)
    assert r is not None, "the origin got nothing of the run"
    data, _, seg = r
    assert seg == 100 + hl, f"the origin got {len(data)} bytes with segment size {seg}: not one GSO send of 8"
    assert len(data) == 8 * (100 + hl), f"{len(data)} bytes in the GSO send, expected 8 x {100 + hl}"
    segs = [data[i : i + seg] for i in range(0, len(data), seg)]
    for i, s in enumerate(segs):
        if pp == "simple":
            assert s[:2] == SPP_MAGIC.to_bytes(2, "big"), f"segment {i} lacks its SPP header: {s[:40].hex()}"
        assert s[hl:] == run[i], f"segment {i} is {s[hl:hl + 8]!r}..., expected {run[i][:8]!r}..."

    with paused(p):
        for s in segs:  # SPP replies keep the header, as they must
            o.sendto(s, flow_addr)
    r = recv_gro(c)
    assert r is not None, "the client got no reply"
    data, _, seg = r
    assert seg == 100 and data == b"".join(run), (
        f"the client got {len(data)} bytes with segment size {seg}: not the 8 replies in one GSO send"
    )
    assert drain_gro(c) == [] and drain_gro(o) == [], "more arrived than was sent"
    c.close()
    o.close()


@pytest.mark.parametrize("pp", ["v2", "simple", "off"])
def test_bursts_of_mixed_sizes_keep_their_boundaries(prism, udp_origins, ports, pp):
    """GSO cuts a send into datagrams of one size, so only datagrams of that size
    may share one (the last may be shorter). A burst of mixed sizes, with empty
    datagrams and a 1,400-byte one among them, must arrive datagram for datagram,
    in order, both ways, with exactly the headers owed. Prism is stopped while each
    burst queues, so that it is read in one batch."""
    o = udp_origins(None, rcvbuf=1 << 20)  # answers nothing: the test sends the replies
    eport = ports(hosts=("127.0.0.1",))
    cfg = udp_cfg([udp_app("mixed", eport, o.port, pp=pp)], idle_ms=10000, edge=("127.0.0.1",))
    cfg.update(workers=1)
    p = prism(cfg)
    c = udp_client(("127.0.0.1", eport))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sizes = [50, 50, 50, 20, 50, 50, 0, 0, 50, 1400, 50, 50, 70, 50, 10, 10, 10, 0, 50]
    burst = [(b"%02d" % i + b"." * n)[:n] for i, n in enumerate(sizes)]
    hl = SPP_LEN if pp == "simple" else 0
    with paused(p):
        for d in burst:
            c.send(d)
    got = o.wait(len(burst), 5)
    assert len(got) == len(burst), f"the origin got {len(got)} of {len(burst)}"
    flow_addr = got[0][1]
    for i, (data, _) in enumerate(got):
        if pp == "simple":
            assert data[:2] == SPP_MAGIC.to_bytes(2, "big"), f"datagram {i} lacks its SPP header: {data[:40].hex()}"
        elif pp == "v2" and i == 0:
            data = decode_pp2(data).payload
        assert data[hl:] == burst[i], f"datagram {i}: {len(data) - hl} bytes {data[hl:hl + 8]!r}, expected {sizes[i]}"

    with paused(p):
        for i, (data, _) in enumerate(got):  # SPP replies carry the header back
            o.sock.sendto(data if pp == "simple" else burst[i], flow_addr)
    replies = []
    while len(replies) < len(burst):
        r = recv_or_none(c, 3)
        if r is None:
            break
        replies.append(r)
    assert replies == burst, f"replies by size {[len(r) for r in replies]}, sent {sizes}"
    c.close()


def recv_up_to(s, n):
    """Up to n datagrams from s, fewer if its timeout passes first."""
    got = []
    for _ in range(n):
        try:
            got.append(s.recv(70000))
        except socket.timeout:
            break
    return got


def test_gso_refused_over_a_small_mtu_falls_back_to_single_datagrams(prism, netns):
    """A run of datagrams over the route's MTU cannot be one GSO send (the kernel
    answers EINVAL) but each datagram alone can go, in fragments, as without GSO.
    In a namespace whose lo has an MTU of 1,280, runs of 1,400-byte datagrams must
    arrive whole, both ways, the first run and the next ones."""
    ns = netns()
    ns.run(["ip", "link", "set", "lo", "mtu", "1280"])
    oport, eport = 17031, 17032
    o = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    o.bind(("127.0.0.1", oport))
    o.settimeout(3)
    cfg = udp_cfg([udp_app("mtu", eport, oport)], idle_ms=10000, edge=("127.0.0.1",))
    cfg.update(workers=1)
    p = prism(cfg, netns=ns)
    c = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.connect(("127.0.0.1", eport))
    c.settimeout(3)
    c.send(b"hello")
    _, flow_addr = o.recvfrom(70000)
    for run_no in range(2):
        run = [(b"%d-%02d" % (run_no, i)).ljust(1400, b"m") for i in range(8)]
        with paused(p):
            for d in run:
                c.send(d)
        got = recv_up_to(o, len(run))
        assert got == run, f"run {run_no}: the origin got {[g[:4] for g in got]} ({len(got)} of {len(run)})"
        with paused(p):
            for d in run:
                o.sendto(d, flow_addr)
        got = recv_up_to(c, len(run))
        assert got == run, f"run {run_no}: the client got {[g[:4] for g in got]} ({len(got)} of {len(run)})"
    c.close()
    o.close()


# ---------------------------------------------------------------------------------
# GRO: a run that arrives coalesced is read at once and keeps its datagrams

UDP_SEGMENT = 103  # the socket option and cmsg type of a GSO send (linux/udp.h)


def send_gso(s, datagrams, dest=None):
    """Sends <datagrams> (all of one size but the last, which may be shorter) as one
    GSO send: over loopback the run reaches a UDP_GRO socket as one buffer."""
    seg = len(datagrams[0])
    cmsg = [(socket.IPPROTO_UDP, UDP_SEGMENT, struct.pack("@H", seg))]
    payload = b"".join(datagrams)
    n = s.sendmsg([payload], cmsg, 0, dest) if dest else s.sendmsg([payload], cmsg)
    assert n == len(payload), f"the GSO send took {n} of {len(payload)} bytes"


def recv_run(s, n, what):
    """At least <n> datagrams from s, cut at the segment sizes, and how many receives
    they took; fails naming <what> if they do not come."""
    got, receives = [], 0
    while len(got) < n:
        r = recv_gro(s)
        assert r is not None, f"{what}: got {len(got)} of {n} datagrams"
        receives += 1
        got += cut(r[0], r[2])
    return got, receives


def gro_count(p):
    c = counters(p)
    assert c is not None and "prism_udp_gro_datagrams_total" in c, (
        f"prism has no prism_udp_gro_datagrams_total counter: {sorted(c or {})}")
    return c["prism_udp_gro_datagrams_total"]


@pytest.mark.parametrize("pp", ["v2", "simple", "off"])
def test_coalesced_runs_are_read_at_once_and_keep_their_datagrams(prism, ports, pp):
    """A client's GSO send (QUIC and WireGuard peers send so) reaches prism's edge
    socket, which has UDP_GRO on, as one buffer; prism reads it at once, counts its
    datagrams in prism_udp_gro_datagrams_total, and each goes to the origin as it
    was sent, with the header owed, the run as GSO sends of at most 64. The origin's
    GSO replies come coalesced too, except to an SPP app, whose replies are checked
    one by one, and reach the client datagram for datagram. Two runs: 20 datagrams of
    100 bytes and one of 37, then the kernel's most, 128 of 10 bytes. Without GRO the
    kernel cuts every run up first and the counter does not move."""
    p, c, o, flow_addr = gro_flow(prism, ports, "gro", pp)
    hl = SPP_LEN if pp == "simple" else 0
    for size, count, last in ((100, 20, 37), (10, 128, None)):
        run = [b"%03d" % i + bytes([65 + i % 26]) * (size - 3) for i in range(count)]
        if last:
            run.append(b"end" + b"z" * (last - 3))
        before = gro_count(p)
        send_gso(c, run)
        got, sends = recv_run(o, len(run), f"run of {size}: the origin")
        assert drain_gro(o) == [], "the origin got more than was sent"
        for i, d in enumerate(got):
            if pp == "simple":
                assert d[:2] == SPP_MAGIC.to_bytes(2, "big"), f"datagram {i} lacks its SPP header: {d[:40].hex()}"
            assert d[hl:] == run[i], f"run of {size}, datagram {i}: {d[hl:hl + 8]!r}..., expected {run[i][:8]!r}..."
        assert sends == -(-len(run) // 64), f"run of {size}: {sends} sends reached the origin, not GSO sends of 64"
        assert gro_count(p) - before == len(run), (
            f"run of {size}: prism_udp_gro_datagrams_total grew by {gro_count(p) - before}, not {len(run)}")

        before = gro_count(p)
        send_gso(o, got, flow_addr)  # SPP replies carry the header back, as they must
        replies, _ = recv_run(c, len(run), f"run of {size}: the client")
        assert replies == run, f"run of {size}: replies by size {[len(r) for r in replies]}"
        assert drain_gro(c) == [], "the client got more than was sent"
        grew = gro_count(p) - before
        assert grew == (0 if pp == "simple" else len(run)), (
            f"run of {size}: prism_udp_gro_datagrams_total grew by {grew} on the replies")
    c.close()
    o.close()


def test_coalesced_runs_over_a_small_mtu_leave_datagram_by_datagram(prism, netns):
    """A coalesced run of 1,400-byte datagrams cannot leave as one GSO send where the
    route's MTU is 1,280 (the kernel answers EMSGSIZE); each datagram must still
    arrive whole, as without GRO. In a namespace whose routes to the client
    (127.0.0.2) and the origin (127.0.0.3) have that MTU (and take 127.0.0.1 as the
    source, so that prism's flow socket is reached over the roomy route too), runs
    sent with GSO to prism (127.0.0.1) must reach the other side datagram for
    datagram, both ways, twice."""
    ns = netns()
    for host in ("127.0.0.2", "127.0.0.3"):
        ns.run(["ip", "route", "add", "local", host, "dev", "lo", "table", "local", "src", "127.0.0.1",
                "mtu", "lock", "1280"])
    oport, eport = 17041, 17042
    o = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    o.bind(("127.0.0.3", oport))
    o.settimeout(3)
    cfg = udp_cfg([udp_app("mtu-gro", eport, oport, origin_host="127.0.0.3")], idle_ms=10000, edge=("127.0.0.1",))
    cfg.update(workers=1)
    p = prism(cfg, netns=ns)
    c = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.2", 0))
    c.connect(("127.0.0.1", eport))
    c.settimeout(3)
    c.send(b"hello")
    _, flow_addr = o.recvfrom(70000)
    assert flow_addr[0] == "127.0.0.1", f"prism's flow socket is {flow_addr}: its replies would meet the small MTU"
    before = gro_count(p)
    for run_no in range(2):
        run = [(b"%d-%02d" % (run_no, i)).ljust(1400, b"g") for i in range(8)]
        send_gso(c, run)
        got = recv_up_to(o, len(run) + 1)
        assert got == run, f"run {run_no}: the origin got {[(g[:4], len(g)) for g in got]}"
        send_gso(o, run, flow_addr)
        got = recv_up_to(c, len(run) + 1)
        assert got == run, f"run {run_no}: the client got {[(g[:4], len(g)) for g in got]}"
    assert gro_count(p) - before == 32, f"prism_udp_gro_datagrams_total grew by {gro_count(p) - before}, not 32"
    c.close()
    o.close()


# ---------------------------------------------------------------------------------
# ICMP port unreachable


def test_icmp_port_unreachable_gives_521_and_447(prism, udp_origins, ports):
    """No listener on the origin port: the kernel answers ICMP port unreachable and the
    flow ends with originError 521. An origin that answered once and then went away:
    status 447."""
    dead = ports(hosts=("127.0.0.1",))
    eport = ports(hosts=("127.0.0.1",))

    # the 447 origin: answers the first datagram, then closes its socket
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    gone.settimeout(3)
    gport = gone.getsockname()[1]
    eport2 = ports(hosts=("127.0.0.1",))
    p = prism(
        udp_cfg(
            [udp_app("nolisten", eport, dead), udp_app("goesaway", eport2, gport)],
            idle_ms=5000,  # longer than the test: only the ICMP error may end these flows
            edge=("127.0.0.1",),
        )
    )
    try:
        c = udp_client(("127.0.0.1", eport))
        c.send(b"anyone?")
        assert recv_or_none(c, QUIET) is None
        cport = c.getsockname()[1]
        _, d = udp_flow_events(p, cport, "127.0.0.1", "nolisten", timeout=3)
        check_record(d, Event="originError", Status=521, ClientProto="udp", OriginPort=dead, OriginBytes=0)

        c2 = udp_client(("127.0.0.1", eport2))
        c2.send(b"hello")
        data, peer = gone.recvfrom(100)
        gone.sendto(data, peer)
        assert recv_or_none(c2, 3) == b"hello"
    finally:
        gone.close()
    c2.send(b"still there?")
    _, d = udp_flow_events(p, c2.getsockname()[1], "127.0.0.1", "goesaway", timeout=3)
    check_record(d, Status=447, ClientProto="udp", OriginPort=gport, OriginBytes=5)
    c.close()
    c2.close()


# ---------------------------------------------------------------------------------
# reply source address


@pytest.mark.parametrize("edges", [["0.0.0.0"], ["127.0.0.1", "127.0.0.2"]], ids=["wildcard", "two-addresses"])
def test_replies_come_from_the_edge_address_the_client_used(prism, udp_origins, ports, edges):
    o = udp_origins(echo)
    eport = ports(hosts=("0.0.0.0",))
    p = prism(udp_cfg([udp_app("src", eport, o.port)], idle_ms=IDLE_MS, edge=edges))
    # connected sockets: the kernel delivers only datagrams from exactly (addr, eport)
    for addr in ("127.0.0.1", "127.0.0.2"):
        s = udp_client((addr, eport))
        for i in range(3):
            msg = b"%s #%d" % (addr.encode(), i)
            s.send(msg)
            assert recv_or_none(s, 3) == msg, f"client talking to {addr}:{eport} got no reply from that address"
        s.close()
    # one unconnected socket to both addresses: two flows, each answered from its own address
    u = udp_client()
    for addr in ("127.0.0.2", "127.0.0.1"):
        u.sendto(addr.encode(), (addr, eport))
        data, src = u.recvfrom(100)
        assert (data, src) == (addr.encode(), (addr, eport)), f"sent to {addr}:{eport}, reply {data!r} from {src}"
    uport = u.getsockname()[1]
    recs = p.events(2, where=lambda r: r.get("ClientPort") == uport and r["Event"] == "connect", timeout=3)
    assert len(recs) == 2, f"one client port to two edge addresses must make two flows: {recs}"
    u.close()


# ---------------------------------------------------------------------------------
# datagram sizes


def test_largest_datagrams_pass_whole_and_one_byte_more_is_dropped(prism, udp_origins, ports):
    """proxy_protocol off: 65,507 bytes (the IPv4 maximum) each way. simple: a 65,469-byte
    payload (+ 38 = 65,507) each way; 65,470 cannot be sent with its header and is
    dropped, never truncated."""
    plain = udp_origins(echo)

    def spp_echo(data, peer, sock):
        sock.sendto(data, peer)  # the header names this flow's client: valid as it is

    spp = udp_origins(spp_echo)
    e1 = ports(hosts=("127.0.0.1",))
    e2 = ports(hosts=("127.0.0.1",))
    p = prism(
        udp_cfg(
            [udp_app("big", e1, plain.port), udp_app("bigspp", e2, spp.port, pp="simple")],
            idle_ms=IDLE_MS,
            edge=("127.0.0.1",),
        )
    )
    rng = random.Random(4)

    c = udp_client(("127.0.0.1", e1))
    big = rng.randbytes(65507)
    c.send(big)
    got = recv_or_none(c, 3, 70000)
    assert got is not None, "no reply to a 65,507-byte datagram (proxy_protocol off)"
    assert len(got) == len(big) and got == big, f"65,507-byte datagram came back as {len(got)} bytes (or changed)"
    assert len(plain.wait(1)[0][0]) == 65507, "the origin did not receive the 65,507 bytes whole"

    s = udp_client(("127.0.0.1", e2))
    payload = rng.randbytes(65469)
    s.send(payload)
    got = recv_or_none(s, 3, 70000)
    assert got is not None, "no reply to a 65,469-byte payload through an SPP app"
    assert len(got) == 65469 and got == payload, f"65,469-byte SPP payload came back as {len(got)} bytes (or changed)"
    data = spp.wait(1)[0][0]
    assert len(data) == 65507 and data[SPP_LEN:] == payload

    s2 = udp_client(("127.0.0.1", e2))
    s2.send(rng.randbytes(65470))
    assert recv_or_none(s2, QUIET, 70000) is None, "a 65,470-byte payload through an SPP app came back"
    time.sleep(0.1)
    assert spp.count == 1, (
        f"the SPP origin received {spp.count - 1} datagram(s) for a 65,470-byte payload "
        f"({[len(d) for d, _ in spp.got[1:]]} bytes): it must be dropped, not truncated"
    )
    s2.send(b"small")  # the flow itself still works
    assert recv_or_none(s2, 3) == b"small"

    m = counters(p)
    if m is None:
        print("NOTE: prism exposes no counters; the drop is asserted only")
    else:
        print({k: v for k, v in m.items() if k.startswith("prism_udp")})
        assert m.get("prism_udp_dropped_total") == 1, f"prism_udp_dropped_total {m.get('prism_udp_dropped_total')}, expected 1"
    for x in (c, s, s2):
        x.close()


# ---------------------------------------------------------------------------------
# port ranges


def test_port_range_maps_by_offset(prism, udp_origins, ports):
    eports = ports.range(3, hosts=("127.0.0.1",))
    oports = ports.range(3, hosts=("127.0.0.1",))

    def tagger(data, peer, sock):
        sock.sendto(b"%d:" % sock.getsockname()[1] + data, peer)

    for op in oports:
        udp_origins(tagger, port=op)
    p = prism(
        udp_cfg(
            [udp_app("range", (eports[0], eports[-1]), (oports[0], oports[-1]))],
            idle_ms=IDLE_MS,
            edge=("127.0.0.1",),
        )
    )
    u = udp_client()
    for ep, op in zip(eports, oports):
        u.sendto(b"x", ("127.0.0.1", ep))
        data, src = u.recvfrom(100)
        assert src == ("127.0.0.1", ep), f"reply to edge port {ep} came from {src}"
        assert data == b"%d:x" % op, f"edge port {ep} reached {data!r}, expected origin port {op}"
    uport = u.getsockname()[1]
    recs = p.events(3, where=lambda r: r.get("ClientPort") == uport and r["Event"] == "connect", timeout=3)
    assert sorted(r["OriginPort"] for r in recs) == oports, f"event records: {recs}"
    u.close()

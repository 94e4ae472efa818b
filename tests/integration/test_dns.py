"""The DNS responder and edge address pools (issue 3 item 5, DESIGN.md section 3).

prism answers A/AAAA for app names on dns.listen with the addresses the apps listen
on: the shared edge addresses by default, or one address per name and family from
edge.pool_v4 / edge.pool_v6. Checked with dig (UDP and TCP) and with raw messages.
"""

import json
import signal
import socket
import struct
import subprocess

import pytest

from api_helpers import restart
from conftest import PRISM_BIN, app, echo_roundtrip, prism_cli, wait_until
from dns_helpers import (
    dig,
    dns_listen,
    header,
    in_net,
    need_dig,
    query,
    qname,
    tcp_connect,
    tcp_read_reply,
    udp_ask,
)


def named(app_id, port, origin, name, **extra):
    a = app(app_id, f"tcp/{port}", origin, **extra)
    a["dns"] = {"type": "CNAME", "name": name}
    return a


def serve_fails(tmp_path, ports, config):
    """Runs prism serve on <config>, which must make it exit non-zero at start;
    returns its stderr."""
    path = tmp_path / "fail.json"
    full = {"data_dir": str(tmp_path / "data"), "workers": 1,
            "api": {"listen": f"127.0.0.1:{ports()}"}, "dns": {"listen": f"127.0.0.1:{ports()}"}}
    full.update(config)
    path.write_text(json.dumps(full))
    r = subprocess.run([PRISM_BIN, "serve", "--config", str(path)], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0, f"prism started on {config}:\n{r.stderr}"
    return r.stderr


def test_dns_shared_addresses(prism, origins, ports):
    need_dig()
    o = origins.echo()
    p1, p2, p3 = ports(), ports(), ports()
    p = prism({"apps": [
        named("ssh", p1, o.addr, "ssh.example.com"),
        named("v4only", p2, o.addr, "v4.example.com", edge_ips={"type": "dynamic", "connectivity": "ipv4"}),
        named("v6only", p3, o.addr, "v6.example.com", edge_ips={"type": "dynamic", "connectivity": "ipv6"}),
    ]})
    listen = dns_listen(p)
    for tcp in (False, True):
        assert dig(listen, "ssh.example.com", "A", tcp) == ("NOERROR", ["127.0.0.1"])
        assert dig(listen, "ssh.example.com", "AAAA", tcp) == ("NOERROR", ["::1"])
        assert dig(listen, "SSH.Example.COM", "A", tcp) == ("NOERROR", ["127.0.0.1"])
        assert dig(listen, "v4.example.com", "A", tcp) == ("NOERROR", ["127.0.0.1"])
        assert dig(listen, "v4.example.com", "AAAA", tcp) == ("NOERROR", [])  # NODATA
        assert dig(listen, "v6.example.com", "A", tcp) == ("NOERROR", [])
        assert dig(listen, "v6.example.com", "AAAA", tcp) == ("NOERROR", ["::1"])
        assert dig(listen, "ssh.example.com", "MX", tcp) == ("NOERROR", [])
        assert dig(listen, "nope.example.com", "A", tcp) == ("NXDOMAIN", [])
        assert dig(listen, "example.com", "A", tcp) == ("NOERROR", [])  # the zone's apex
        assert dig(listen, "www.example.org", "A", tcp) == ("REFUSED", [])
        assert dig(listen, "com", "A", tcp) == ("REFUSED", [])
    # Without EDNS too (dig sends an OPT by default).
    assert dig(listen, "ssh.example.com", "A", extra=("+noedns",)) == ("NOERROR", ["127.0.0.1"])
    # What DNS says is where the app is.
    echo_roundtrip("127.0.0.1", p1)
    echo_roundtrip("::1", p1)


def test_dns_api_zones_and_apps(prism, origins, ports):
    """Zones and apps made through the API are answered for at once: the apex of
    an API zone exists (NODATA), unknown names in it are NXDOMAIN, and an app
    created (then deleted) through the API appears in (then leaves) DNS."""
    need_dig()
    from api_helpers import Api

    o = origins.echo()
    port = ports()
    p = prism({"edge": {"addresses": ["127.0.0.1"], "pool_v4": "127.10.0.0/16"}})
    api = Api(p)
    listen = dns_listen(p)
    assert dig(listen, "zone.test", "A") == ("REFUSED", [])
    zone = api.make_zone("zone.test")
    assert dig(listen, "zone.test", "A") == ("NOERROR", [])
    assert dig(listen, "nope.zone.test", "A") == ("NXDOMAIN", [])
    made = api.make_app(zone["id"], port, o.addr, "ssh.zone.test")
    st, a = dig(listen, "ssh.zone.test", "A")
    assert st == "NOERROR" and len(a) == 1 and in_net(a[0], "127.10.0.0/16"), a
    echo_roundtrip(a[0], port)
    api.ok("DELETE", f"/zones/{zone['id']}/spectrum/apps/{made['id']}")
    assert dig(listen, "ssh.zone.test", "A") == ("NXDOMAIN", [])


def test_dns_follows_reload(prism, origins, ports):
    need_dig()
    o = origins.echo()
    p1, p2 = ports(), ports()
    p = prism({"apps": [named("a", p1, o.addr, "a.example.com")]})
    listen = dns_listen(p)
    assert dig(listen, "b.example.com", "A") == ("NXDOMAIN", [])
    p.reload({"apps": [named("a", p1, o.addr, "a.example.com"), named("b", p2, o.addr, "b.example.com")]})
    wait_until(lambda: dig(listen, "b.example.com", "A") == ("NOERROR", ["127.0.0.1"]), timeout=5,
               msg="b.example.com to appear after SIGHUP")
    p.reload({"apps": [named("b", p2, o.addr, "b.example.com")]})
    wait_until(lambda: dig(listen, "a.example.com", "A")[0] == "NXDOMAIN", timeout=5,
               msg="a.example.com to go after SIGHUP")


def test_dns_pool_v4(prism, origins, ports):
    need_dig()
    o = origins.echo()
    p1, p2, p3 = ports(), ports(), ports()
    apps = [
        named("ssh", p1, o.addr, "ssh.example.com"),
        named("ssh-alt", p2, o.addr, "ssh.example.com"),  # shares the name: same address
        named("game", p3, o.addr, "game.example.com", edge_ips={"type": "dynamic", "connectivity": "ipv4"}),
    ]
    p = prism({"edge": {"pool_v4": "127.10.0.0/16"}, "apps": apps})
    listen = dns_listen(p)
    st, ssh = dig(listen, "ssh.example.com", "A")
    assert st == "NOERROR" and len(ssh) == 1 and in_net(ssh[0], "127.10.0.0/16"), ssh
    assert ssh[0] not in ("127.10.0.0", "127.10.255.255")
    st, game = dig(listen, "game.example.com", "A", tcp=True)
    assert st == "NOERROR" and len(game) == 1 and in_net(game[0], "127.10.0.0/16"), game
    assert game != ssh
    # No IPv6 pool: the names have no IPv6 address at all (not the shared ::1).
    assert dig(listen, "ssh.example.com", "AAAA") == ("NOERROR", [])
    # Traffic reaches the apps on their own addresses, and only there.
    echo_roundtrip(ssh[0], p1)
    echo_roundtrip(ssh[0], p2)
    echo_roundtrip(game[0], p3)
    for port in (p1, p2, p3):
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is open on the shared address"

    # A reload that adds a name keeps the others where they are.
    p4 = ports()
    p.reload({"edge": {"pool_v4": "127.10.0.0/16"}, "apps": apps + [named("new", p4, o.addr, "new.example.com")]})
    wait_until(lambda: dig(listen, "new.example.com", "A")[1], timeout=5, msg="new.example.com to get an address")
    _, new = dig(listen, "new.example.com", "A")
    assert new not in (ssh, game)
    assert dig(listen, "ssh.example.com", "A") == ("NOERROR", ssh)
    assert dig(listen, "game.example.com", "A") == ("NOERROR", game)
    echo_roundtrip(new[0], p4)

    # A restart with the same names gives the same addresses (no state needed).
    assert p.stop() == 0
    p2nd = prism({"edge": {"pool_v4": "127.10.0.0/16"}, "apps": apps})
    assert dig(dns_listen(p2nd), "ssh.example.com", "A") == ("NOERROR", ssh)
    assert dig(dns_listen(p2nd), "game.example.com", "A") == ("NOERROR", game)


def test_dns_pool_v4_and_v6_in_netns(prism, netns, origins):
    """IPv6 pool addresses are not assigned to any interface: the namespace routes
    the prefix to lo (AnyIP) and, until listeners use IPV6_FREEBIND, allows binding
    non-local IPv6 addresses with the per-namespace sysctl."""
    need_dig()
    ns = netns()
    ns.run(["ip", "-6", "route", "add", "local", "fd00:abcd::/64", "dev", "lo"])
    ns.run(["sysctl", "-q", "-w", "net.ipv6.ip_nonlocal_bind=1"])
    o = origins.echo(sock_factory=lambda fam: ns.socket(fam))
    apps = [
        named("both", 18101, o.addr, "both.example.com"),
        named("v6", 18102, o.addr, "v6.example.com", edge_ips={"type": "dynamic", "connectivity": "ipv6"}),
        named("v4", 18103, o.addr, "v4.example.com", edge_ips={"type": "dynamic", "connectivity": "ipv4"}),
    ]
    p = prism({"edge": {"pool_v4": "127.10.0.0/16", "pool_v6": "fd00:abcd::/64"}, "apps": apps}, netns=ns)
    listen = dns_listen(p)
    st, a = dig(listen, "both.example.com", "A", ns=ns)
    assert st == "NOERROR" and len(a) == 1 and in_net(a[0], "127.10.0.0/16"), a
    st, aaaa = dig(listen, "both.example.com", "AAAA", ns=ns, tcp=True)
    assert st == "NOERROR" and len(aaaa) == 1 and in_net(aaaa[0], "fd00:abcd::/64"), aaaa
    assert aaaa[0] != "fd00:abcd::"
    assert dig(listen, "v6.example.com", "A", ns=ns) == ("NOERROR", [])
    st, v6 = dig(listen, "v6.example.com", "AAAA", ns=ns)
    assert len(v6) == 1 and v6 != aaaa and in_net(v6[0], "fd00:abcd::/64")
    assert dig(listen, "v4.example.com", "AAAA", ns=ns) == ("NOERROR", [])
    st, v4 = dig(listen, "v4.example.com", "A", ns=ns)
    assert len(v4) == 1 and v4 != a
    factory = lambda fam: ns.socket(fam)  # noqa: E731
    echo_roundtrip(a[0], 18101, sock_factory=factory)
    echo_roundtrip(aaaa[0], 18101, sock_factory=factory)
    echo_roundtrip(v6[0], 18102, sock_factory=factory)
    echo_roundtrip(v4[0], 18103, sock_factory=factory)


def test_dns_static_ips(prism, origins, ports, tmp_path):
    need_dig()
    o = origins.echo()
    port = ports()
    static = named("st", port, o.addr, "st.example.com", edge_ips={"type": "static", "ips": ["127.0.0.55"]})
    static["dns"]["type"] = "ADDRESS"
    p = prism({"edge": {"pool_v4": "127.10.0.0/16"}, "apps": [static]})
    assert dig(dns_listen(p), "st.example.com", "A") == ("NOERROR", ["127.0.0.55"])
    echo_roundtrip("127.0.0.55", port)

    # An address this node does not have is refused at start, with the reason.
    bad = json.loads(json.dumps(static))
    bad["edge_ips"]["ips"] = ["192.0.2.55"]
    err = serve_fails(tmp_path, ports, {"apps": [bad]})
    assert "app 'st': edge_ips.ips[0]: 192.0.2.55 cannot be bound on this node" in err, err


def test_dns_pool_full_refused(origins, ports, tmp_path):
    o = origins.echo()
    apps = [named(f"a{i}", ports(), o.addr, f"a{i}.example.com") for i in range(3)]
    err = serve_fails(tmp_path, ports, {"edge": {"pool_v4": "127.10.0.0/30"}, "apps": apps})
    assert "edge.pool_v4 127.10.0.0/30 is full: 2 usable addresses" in err, err


def test_dns_pool_family_missing_refused(origins, ports, tmp_path):
    """With pools, a dynamic app takes only pool addresses: asking for a family
    without a pool is an error, not a silent fall back to the shared addresses."""
    o = origins.echo()
    v6 = named("v6", ports(), o.addr, "v6.example.com", edge_ips={"type": "dynamic", "connectivity": "ipv6"})
    err = serve_fails(tmp_path, ports, {"edge": {"pool_v4": "127.10.0.0/16"}, "apps": [v6]})
    assert "app 'v6': edge_ips.connectivity: IPv6 addresses come from edge.pool_v6, which is not configured" in err, err


def test_pool_config_validation(tmp_path):
    cases = [
        ({"pool_v4": "127.10.0.1/16"}, 'edge.pool_v4: "127.10.0.1/16" has host bits set: the network is 127.10.0.0/16'),
        ({"pool_v4": "fd00::/64"}, 'edge.pool_v4: "fd00::/64" is an IPv6 prefix'),
        ({"pool_v6": "127.10.0.0/16"}, 'edge.pool_v6: "127.10.0.0/16" is an IPv4 prefix'),
        ({"pool_v4": "127.10.0.0/31"}, "prefix length out of range: 8 to 30"),
        ({"pool_v6": "fd00::/8"}, "prefix length out of range: 16 to 120"),
        ({"pool_v4": "127.10.0.0"}, "CIDR notation"),
        ({"pool_v4": 16}, "edge.pool_v4: must be a string or null"),
    ]
    for edge, want in cases:
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"edge": edge}))
        r = prism_cli("check-config", str(path))
        assert r.returncode == 2 and want in r.stderr, (edge, r.stderr)
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"edge": {"pool_v4": "127.10.0.0/16", "pool_v6": "fd00:abcd::/64"}}))
    r = prism_cli("check-config", str(path))
    assert r.returncode == 0, r.stderr


def test_dns_raw_messages(prism, origins, ports):
    o = origins.echo()
    p = prism({"apps": [named("ssh", ports(), o.addr, "ssh.example.com")]})
    listen = dns_listen(p)

    r = udp_ask(listen, query("ssh.example.com"))
    h = header(r)
    assert (h["id"], h["qr"], h["aa"], h["rcode"], h["qd"], h["an"]) == (0x4242, 1, 1, 0, 1, 1)
    assert r.endswith(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01")

    # QDCOUNT 2: FORMERR. Opcode UPDATE: NOTIMP. A compression loop: FORMERR.
    two = query("", qdcount=2, body=(qname("a.example.com") + b"\0\1\0\1") * 2)
    assert header(udp_ask(listen, two))["rcode"] == 1
    assert header(udp_ask(listen, query("ssh.example.com", flags=0x2800)))["rcode"] == 4
    loop = query("", body=b"\xc0\x0e\xc0\x0c\x00\x01\x00\x01")
    assert header(udp_ask(listen, loop))["rcode"] == 1
    # Still alive and answering.
    assert header(udp_ask(listen, query("nope.example.com")))["rcode"] == 3

    # TCP: two queries in one write are both answered, in order.
    s = tcp_connect(listen)
    try:
        m1, m2 = query("ssh.example.com", qid=1), query("nope.example.com", qid=2)
        s.sendall(struct.pack(">H", len(m1)) + m1 + struct.pack(">H", len(m2)) + m2)
        h1, h2 = header(tcp_read_reply(s)), header(tcp_read_reply(s))
        assert (h1["id"], h1["rcode"], h1["an"]) == (1, 0, 1)
        assert (h2["id"], h2["rcode"]) == (2, 3)
        # A query split across writes.
        m3 = query("ssh.example.com", qid=3, qtype=28)
        framed = struct.pack(">H", len(m3)) + m3
        s.sendall(framed[:1])
        s.sendall(framed[1:7])
        s.sendall(framed[7:])
        h3 = header(tcp_read_reply(s))
        assert (h3["id"], h3["an"]) == (3, 1)
        # A length beyond what a query needs closes the connection.
        s.sendall(b"\xff\xff")
        s.settimeout(5)
        assert s.recv(10) == b""
    finally:
        s.close()
    assert p.alive()
    assert p.stop(signal.SIGTERM) == 0


def test_dns_pool_names_share_a_port(prism, origins, ports):
    """With a pool, each name has its own address, so apps of different names may
    use the same port (the point of per-name addresses)."""
    need_dig()
    o1, o2 = origins.echo(), origins.echo()
    port = ports()
    p = prism({"edge": {"pool_v4": "127.10.0.0/16"}, "apps": [
        named("one", port, o1.addr, "one.example.com"),
        named("two", port, o2.addr, "two.example.com"),
    ]})
    _, one = dig(dns_listen(p), "one.example.com", "A")
    _, two = dig(dns_listen(p), "two.example.com", "A")
    assert len(one) == 1 and len(two) == 1 and one != two
    echo_roundtrip(one[0], port)
    echo_roundtrip(two[0], port)
    assert o1.count() == 1 and o2.count() == 1


def authority_soa(listen, name, qtype="A", tcp=False, section="+authority"):
    """The SOA lines dig prints in <section> for a query of name."""
    host, port = listen.rsplit(":", 1)
    args = ["dig", f"@{host.strip('[]')}", "-p", port, name, qtype, "+time=2", "+tries=2",
            "+noall", section]
    if tcp:
        args.append("+tcp")
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    return [line.split() for line in r.stdout.splitlines() if "\tSOA\t" in line or " SOA " in line]


def test_dns_negative_answers_carry_the_zone_soa(prism, origins, ports):
    """RFC 2308: NXDOMAIN and NODATA carry the closest zone's SOA in the authority
    section (minimum = the negative-caching TTL); a SOA query for a zone's name gets
    it as the answer; positive answers and REFUSED carry none."""
    need_dig()
    o = origins.echo()
    p = prism({"apps": [
        named("ssh", ports(), o.addr, "ssh.example.com"),
        named("db", ports(), o.addr, "db.a.b.example.com"),
    ]})
    listen = dns_listen(p)
    for tcp in (False, True):
        for name, qtype, zone in (("nope.example.com", "A", "example.com"),
                                  ("ssh.example.com", "MX", "example.com"),
                                  ("example.com", "AAAA", "example.com"),
                                  ("x.a.b.example.com", "A", "a.b.example.com")):
            soa = authority_soa(listen, name, qtype, tcp)
            assert len(soa) == 1, f"{name} {qtype}: want one SOA in the authority, got {soa}"
            owner, ttl, cls, typ, mname, rname, serial, refresh, retry, expire, minimum = soa[0]
            assert (owner, cls, typ, mname, rname) == (
                zone + ".", "IN", "SOA", zone + ".", "hostmaster." + zone + ".")
            assert int(ttl) == 60 and int(minimum) == 60
            assert int(serial) > 1_700_000_000  # the time of the last change of names
            assert (int(refresh), int(retry), int(expire)) == (3600, 600, 604800)
        assert authority_soa(listen, "ssh.example.com", "A", tcp) == []
        assert authority_soa(listen, "www.example.org", "A", tcp) == []
        answer = authority_soa(listen, "example.com", "SOA", tcp, section="+answer")
        assert len(answer) == 1 and answer[0][0] == "example.com.", answer


def pool_slot(name, count, family="4"):
    """Which usable address (0..count-1) of a pool the hash of name picks first, as
    src/proxy/edgepool.c computes it (FNV-1a 64 of the name and family, then
    splitmix64's finalizer)."""
    m = (1 << 64) - 1
    h = 0xcbf29ce484222325
    for b in name.encode() + family.encode():
        h = ((h ^ b) * 0x100000001b3) & m
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & m
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & m
    h ^= h >> 31
    return h % count


def test_dns_pool_addresses_survive_a_restart(prism, origins, ports):
    """A name keeps its pool address across a restart even where placing the names
    afresh would go another way: two names whose hashes pick the same address of a
    two-address pool, the second one added by a reload, keep what they held, because
    the map is saved in the store."""
    need_dig()
    o = origins.echo()
    names = [f"n{i:02d}.example.com" for i in range(100)]
    a, b = next((x, y) for x in names for y in names if x < y and pool_slot(x, 2) == pool_slot(y, 2))
    v4 = {"type": "dynamic", "connectivity": "ipv4"}
    edge = {"pool_v4": "127.10.0.0/30"}  # two usable addresses: .1 and .2
    pa, pb = ports(), ports()
    app_a, app_b = named("a", pa, o.addr, a, edge_ips=v4), named("b", pb, o.addr, b, edge_ips=v4)

    fresh = prism({"edge": edge, "apps": [app_a]})  # where a goes when placed first
    _, a_first = dig(dns_listen(fresh), a, "A")
    assert fresh.stop() == 0

    p = prism({"edge": edge, "apps": [app_b]})
    listen = dns_listen(p)
    _, b_addr = dig(listen, b, "A")
    assert b_addr == a_first, "the test needs two names that pick the same address"
    p.reload({"edge": edge, "apps": [app_a, app_b]})
    wait_until(lambda: dig(listen, a, "A")[1], timeout=5, msg=f"{a} to get an address")
    _, a_addr = dig(listen, a, "A")
    assert a_addr != b_addr and dig(listen, b, "A") == ("NOERROR", b_addr)

    restart(p)  # same file (both names) and data_dir: placed afresh, a would take b's address
    assert dig(listen, a, "A") == ("NOERROR", a_addr)
    assert dig(listen, b, "A") == ("NOERROR", b_addr)
    echo_roundtrip(a_addr[0], pa)
    echo_roundtrip(b_addr[0], pb)

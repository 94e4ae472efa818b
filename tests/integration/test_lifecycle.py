"""Lifecycle (issue 2, item 5): SIGTERM/SIGINT drain and exit 0; SIGHUP adds,
removes and changes apps without cutting live connections; an invalid file on
SIGHUP keeps the running configuration. Reload under traffic is in
test_reload_under_traffic below: 100 SIGHUPs, 200 streams, 0 failures."""

import contextlib
import random
import re
import signal
import socket
import threading
import time


from conftest import (
    app,
    check_record,
    connect,
    echo_roundtrip,
    is_refused,
    recv_exact,
    recv_until_eof,
    wait_until,
)


def cfg(apps, **timeouts):
    t = {"connect_ms": 2000, "drain_ms": 5000}
    t.update(timeouts)
    return {"edge": {"addresses": ["127.0.0.1", "::1"]}, "timeouts": t, "apps": apps}


def reachable(host, port):
    try:
        echo_roundtrip(host, port, b"probe", timeout=2)
        return True
    except (OSError, AssertionError):
        return False


def banner_echo(tag):
    """An origin that first sends tag + newline, then echoes."""

    def handler(conn, peer, server):
        conn.sendall(tag + b"\n")
        conn.settimeout(30)
        while True:
            try:
                d = conn.recv(65536)
            except OSError:
                break
            if not d:
                break
            conn.sendall(d)
        conn.close()

    return handler


def test_sigterm_lets_live_connection_finish(prism, origins, ports):
    echo = origins.echo()
    eport = ports()
    p = prism(cfg([app("drain", f"tcp/{eport}", echo.addr)], drain_ms=5000))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    sent = 0
    for i in range(5):
        msg = b"before-%d;" % i
        s.sendall(msg)
        sent += len(msg)
        assert recv_exact(s, len(msg)) == msg
    n = p.line_count()
    p.signal(signal.SIGTERM)
    with contextlib.suppress(AssertionError):  # no promised wording: a new line, or 0.5 s
        p.wait_log(r".", timeout=0.5, start=n)
    for i in range(10):  # the live connection keeps working during the drain
        msg = b"during-drain-%d;" % i
        s.sendall(msg)
        assert recv_exact(s, len(msg)) == msg, "live connection broken during the drain"
        sent += len(msg)
        time.sleep(0.05)
    assert p.alive(), f"prism exited with a live connection before drain_ms (rc {p.proc.returncode})"
    s.shutdown(socket.SHUT_WR)
    rest, err = recv_until_eof(s, timeout=5)
    s.close()
    assert rest == b"" and err is None, f"live connection ended badly: {rest!r} {err!r}"
    rc = p.stop(timeout=10)  # the last connection ended: prism exits well before drain_ms
    assert rc == 0, f"prism exited {rc} after SIGTERM, expected 0"
    _, d = p.conn_events(cport, timeout=2)
    check_record(d, Status=200, Event="disconnect", ClientBytes=sent, OriginBytes=sent)


def test_sigterm_stops_accepting_while_draining(prism, origins, ports):
    """After SIGTERM the edge ports refuse new connections (listeners closed), even
    while a live connection keeps prism draining; a connection the kernel accepted
    on a listener nobody serves any more would hang."""
    echo = origins.echo()
    eport = ports()
    p = prism(cfg([app("drain2", f"tcp/{eport}", echo.addr)], drain_ms=5000))
    live = connect("127.0.0.1", eport)
    live.sendall(b"abc")
    assert recv_exact(live, 3) == b"abc"
    p.signal(signal.SIGTERM)
    try:
        for host in ("127.0.0.1", "::1"):
            wait_until(lambda: is_refused(host, eport), timeout=3, msg=f"[{host}]:{eport} to refuse new connections after SIGTERM")
    finally:
        live.close()
    assert p.stop(timeout=10) == 0


def test_sigterm_drain_deadline_then_exit_0(prism, origins, ports):
    echo = origins.echo()
    eport = ports()
    p = prism(cfg([app("stuck", f"tcp/{eport}", echo.addr)], drain_ms=1000))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    echo_ok = b"x" * 10
    s.sendall(echo_ok)
    recv_exact(s, 10)
    t0 = time.monotonic()
    rc = p.stop(signal.SIGTERM, timeout=10)
    took = time.monotonic() - t0
    assert rc == 0, f"prism exited {rc} after the drain deadline, expected 0"
    assert took >= 0.5, f"prism exited after {took:.2f}s, before drain_ms=1000 while a connection was live"
    data, err = recv_until_eof(s, timeout=5)
    s.close()
    assert data == b"", f"unexpected bytes after drain: {data!r}"
    recs = p.events(where=lambda r: r.get("ClientPort") == cport)
    closing = [r for r in recs if r.get("Event") != "connect"]
    assert len(closing) == 1, f"the connection cut at the drain deadline needs exactly one closing record: {recs}"


def test_sigint_exits_0(prism, origins, ports):
    echo = origins.echo()
    eport = ports()
    p = prism(cfg([app("int", f"tcp/{eport}", echo.addr)]))
    echo_roundtrip("::1", eport)
    assert p.stop(signal.SIGINT, timeout=10) == 0, "prism must exit 0 on SIGINT"


def test_sighup_adds_and_removes_apps(prism, origins, ports):
    echo = origins.echo()
    pa, pb = ports(), ports()
    a = app("a", f"tcp/{pa}", echo.addr)
    b = app("b", f"tcp/{pb}", echo.addr)
    p = prism(cfg([a]))
    assert is_refused("127.0.0.1", pb), "app b's port is open before b exists"

    p.reload(cfg([a, b]))
    for host in ("127.0.0.1", "::1"):
        wait_until(lambda: reachable(host, pb), timeout=5, msg=f"app b on [{host}]:{pb} after SIGHUP added it")

    p.reload(cfg([a]))
    for host in ("127.0.0.1", "::1"):
        wait_until(lambda: is_refused(host, pb), timeout=5, msg=f"app b's listener [{host}]:{pb} to close after SIGHUP removed b")
    assert reachable("127.0.0.1", pa) and reachable("::1", pa), "app a stopped working across reloads"
    assert p.alive()
    b_recs = p.events(where=lambda r: r.get("Application") == "b" and r.get("Event") != "connect", count=2, timeout=5)
    assert all(r["Status"] == 200 for r in b_recs), f"app b's connections: {b_recs}"


def test_sighup_removed_app_keeps_live_connection_and_closes_listener(prism, origins, ports):
    echo = origins.echo()
    pa, pb = ports(), ports()
    a = app("a", f"tcp/{pa}", echo.addr)
    b = app("b", f"tcp/{pb}", echo.addr)
    p = prism(cfg([a, b]))
    live = connect("127.0.0.1", pb)
    live.sendall(b"live-before")
    assert recv_exact(live, 11) == b"live-before"

    p.reload(cfg([a]))
    try:
        for i in range(5):  # the live connection survives b's removal
            msg = b"live-after-removal-%d" % i
            live.sendall(msg)
            assert recv_exact(live, len(msg)) == msg, "removing an app cut its live connection"
        # and b's listeners close even though one of its connections is still live
        for host in ("127.0.0.1", "::1"):
            wait_until(lambda: is_refused(host, pb), timeout=5,
                       msg=f"app b's listener [{host}]:{pb} to close after SIGHUP removed b (one b connection still live)")
    finally:
        live.close()
    assert reachable("127.0.0.1", pa), "app a stopped working across reloads"


def test_sighup_changed_origin_applies_to_new_connections_only(prism, origins, ports):
    one = origins.scripted(banner_echo(b"ONE"))
    two = origins.scripted(banner_echo(b"TWO"))
    eport = ports()
    p = prism(cfg([app("chg", f"tcp/{eport}", one.addr)]))
    live = connect("127.0.0.1", eport)
    assert recv_exact(live, 4) == b"ONE\n"

    p.reload(cfg([app("chg", f"tcp/{eport}", two.addr)]))

    def new_conn_banner():
        s = connect("127.0.0.1", eport)
        try:
            return recv_exact(s, 4, timeout=3)
        finally:
            s.close()

    wait_until(lambda: new_conn_banner() == b"TWO\n", timeout=5, msg="new connections to reach the new origin")
    for host in ("127.0.0.1", "::1"):
        s = connect(host, eport)
        assert recv_exact(s, 4) == b"TWO\n", f"a new connection via {host} still reached the old origin"
        s.close()
    for i in range(5):  # the live connection still talks to the old origin
        msg = b"still-one-%d" % i
        live.sendall(msg)
        assert recv_exact(live, len(msg)) == msg, "live connection cut or redirected by the origin change"
    assert one.count() == 1, f"old origin saw {one.count()} connections, expected only the live one"
    live.close()


def test_sighup_invalid_file_keeps_serving(prism, origins, ports):
    echo = origins.echo()
    pa, pb = ports(), ports()
    good = cfg([app("a", f"tcp/{pa}", echo.addr)])
    p = prism(good)
    live = connect("127.0.0.1", pa)
    live.sendall(b"1234")
    assert recv_exact(live, 4) == b"1234"

    bad = cfg([app("a", f"tcp/{pa}", echo.addr), app("b", f"tcp/{pb}", echo.addr)])
    bad["bogus_key"] = True
    start = p.reload(bad, settle=0)
    line = p.wait_log(r"bogus_key", timeout=5, start=start, what="a log line naming the invalid key after SIGHUP")
    assert p.alive(), "prism died on an invalid file"
    assert reachable("127.0.0.1", pa), "app a stopped serving after an invalid reload"
    assert is_refused("127.0.0.1", pb), "the invalid file was partly applied: app b listens"
    live.sendall(b"5678")
    assert recv_exact(live, 4) == b"5678", "live connection cut by an invalid reload"

    p.reload(raw='{"apps": [', settle=0)  # not even JSON
    time.sleep(0.5)
    assert p.alive() and reachable("::1", pa), "prism stopped serving after a syntax error on reload"

    fixed = cfg([app("a", f"tcp/{pa}", echo.addr), app("b", f"tcp/{pb}", echo.addr)])
    p.reload(fixed)
    wait_until(lambda: reachable("127.0.0.1", pb), timeout=5, msg="app b after the file was fixed")
    live.close()
    print("reload error logged as:", line)


def test_sighup_names_keys_that_need_a_restart(prism, origins, ports):
    """api.listen, dns.listen, data_dir and workers are read once at start: a reload
    that changes one applies the rest and says which key waits for a restart."""
    echo = origins.echo()
    pa = ports()
    p = prism(cfg([app("a", f"tcp/{pa}", echo.addr)]))
    changed = cfg([app("a", f"tcp/{pa}", echo.addr)])
    changed["dns"] = {"listen": f"127.0.0.1:{ports()}"}
    changed["workers"] = 1
    start = p.reload(changed, settle=0)
    p.wait_log(r"dns\.listen changed; it takes effect at the next start", timeout=5, start=start,
               what="a warning naming dns.listen")
    p.wait_log(r"workers changed; it takes effect at the next start", timeout=5, start=start,
               what="a warning naming workers")
    assert reachable("127.0.0.1", pa), "the rest of the reload must still apply"


# ---------------------------------------------------------------------------------
# reload under traffic


def test_reload_under_traffic(prism, origins, ports):
    """100 SIGHUPs 20-50 ms apart, the file alternately adding and removing a second
    app, while 200 connections stream echo data and new short ones keep arriving:
    0 failed or cut connections, every echoed byte exact."""
    echo = origins.echo()
    pa, pb = ports(), ports()
    a = app("main", f"tcp/{pa}", echo.addr)
    b = app("extra", f"tcp/{pb}", echo.addr)
    p = prism(cfg([a], drain_ms=5000))

    n_streams = 200
    stop = threading.Event()
    failures = []
    lock = threading.Lock()
    stats = {"stream_bytes": 0, "short_ok": 0}

    def fail(msg):
        with lock:
            failures.append(msg)

    streams = []
    for i in range(n_streams):
        host = "127.0.0.1" if i % 2 == 0 else "::1"
        s = connect(host, pa, timeout=10)
        streams.append(s)

    def stream(i, s):
        rng = random.Random(i)
        total = 0
        try:
            while not stop.is_set():
                n = rng.randint(1, 4096)
                msg = rng.randbytes(n)
                s.sendall(msg)
                got = recv_exact(s, n, timeout=10)
                if got != msg:
                    fail(f"stream {i}: echo mismatch after {total} bytes")
                    return
                total += n
                time.sleep(rng.uniform(0, 0.01))
            s.shutdown(socket.SHUT_WR)
            rest, err = recv_until_eof(s, timeout=10)
            if rest or err:
                fail(f"stream {i}: bad end {rest[:20]!r} {err!r}")
        except (OSError, AssertionError) as e:
            fail(f"stream {i}: {e!r} after {total} bytes")
        finally:
            s.close()
            with lock:
                stats["stream_bytes"] += total

    def short_conns():
        rng = random.Random(99)
        k = 0
        deadline = time.monotonic() + 30
        while not stop.is_set() and k < 5000 and time.monotonic() < deadline:
            host = "127.0.0.1" if k % 2 else "::1"
            payload = rng.randbytes(rng.randint(1, 512))
            try:
                echo_roundtrip(host, pa, payload, timeout=5)
                with lock:
                    stats["short_ok"] += 1
            except (OSError, AssertionError) as e:
                fail(f"short connection {k} via {host}: {e!r}")
            k += 1

    threads = [threading.Thread(target=stream, args=(i, s), daemon=True) for i, s in enumerate(streams)]
    threads += [threading.Thread(target=short_conns, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()

    rng = random.Random(7)
    hups = 0
    t0 = time.monotonic()
    for i in range(100):
        p.reload(cfg([a, b] if i % 2 == 0 else [a], drain_ms=5000), settle=0)
        hups += 1
        time.sleep(rng.uniform(0.02, 0.05))
        if not p.alive():
            break
    hup_time = time.monotonic() - t0
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    stuck = [t for t in threads if t.is_alive()]

    assert p.alive(), f"prism died during the reloads (rc {p.proc.returncode})"
    assert hups == 100
    assert not stuck, f"{len(stuck)} client threads hung"
    assert not failures, f"{len(failures)} failures during 100 reloads, first ones:\n" + "\n".join(failures[:10])
    assert stats["short_ok"] >= 50, f"only {stats['short_ok']} short connections completed"
    print(f"100 SIGHUPs in {hup_time:.1f}s; {stats['stream_bytes']} bytes echoed on 200 streams; "
          f"{stats['short_ok']} short connections")
    # the last file has only 'main' (i = 99 is odd): 'extra' must be closed
    wait_until(lambda: is_refused("127.0.0.1", pb), timeout=5, msg="app 'extra' closed after the last reload")
    n_conns = n_streams + stats["short_ok"]
    recs = p.events(
        count=n_conns, where=lambda r: r.get("Application") == "main" and r.get("Event") != "connect", timeout=10
    )
    bad = [r for r in recs if r.get("Status") != 200]
    assert not bad, f"{len(bad)} connections closed with a status other than 200, e.g. {bad[:3]}"


def test_second_node_on_the_same_api_or_dns_port_refuses_to_start(prism):
    """The API and the DNS responder never share their ports (no SO_REUSEPORT, and no
    SO_REUSEADDR on the DNS UDP socket): a second node given the same address exits
    with the address in its error, instead of splitting the queries with the first."""
    first = prism(cfg([]))
    for key, what in (("api", r"api\.listen {}:"), ("dns", r"dns\.listen {} \(udp\):")):
        taken = first.config[key]["listen"]
        second = prism({**cfg([]), key: {"listen": taken}}, start=False)
        second.start(wait_ready=False)
        try:
            rc = second.proc.wait(15)
        finally:
            second.stopped = True  # it is meant to exit on its own
        second.reader.join(5)
        assert rc != 0, f"the second node ran with {key}.listen {taken} taken"
        second.wait_log(what.format(re.escape(taken)) + r" Address already in use", timeout=1)
    assert first.alive()
    host, port = first.config["api"]["listen"].rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=2).close()

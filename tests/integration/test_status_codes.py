"""Every closing status code of issue 2 provoked on purpose and found in the event log
(one connect record with Status 0, then exactly one closing record with the exact
Status and Event). Timeouts and blackholes run inside namespaces the test creates,
with prism, client and origin all inside: `ip netns exec NS build/prism ...`."""

import socket
import threading
import time

from conftest import app, check_record, connect, recv_exact, recv_until_eof, set_rst_on_close, wait_until

ORIGIN_ERROR = "originError"
DISCONNECT = "disconnect"


def cfg(apps, **timeouts):
    t = {"connect_ms": 2000, "drain_ms": 1000}
    t.update(timeouts)
    return {"edge": {"addresses": ["127.0.0.1"]}, "timeouts": t, "apps": apps}


def keep_writing(s, stop, seconds=10.0, chunk=b"w" * 4096):
    """Writes until an error, stop is set, or seconds pass; returns the error or None."""
    s.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            s.send(chunk)
        except socket.timeout:
            continue
        except OSError as e:
            return e
        time.sleep(0.002)
    return None


def closing_seen(p, cport):
    return any(r.get("ClientPort") == cport and r.get("Event") != "connect" for r in p.read_events())


# ---------------------------------------------------------------------------------
# connect failures (Event originError)


def test_521_origin_refused(prism, ports):
    dead = ports(hosts=("127.0.0.1",))
    eport = ports()
    p = prism(cfg([app("refused", f"tcp/{eport}", f"tcp://127.0.0.1:{dead}")]))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    data, err = recv_until_eof(s, timeout=5)
    s.close()
    assert data == b"", f"client got bytes from a refused origin: {data!r}"
    c, d = p.conn_events(cport, "127.0.0.1")
    check_record(c, Application="refused", ClientIP="127.0.0.1", ClientPort=cport, Status=0)
    check_record(
        d,
        Application="refused",
        ClientIP="127.0.0.1",
        ClientPort=cport,
        OriginIP="127.0.0.1",
        OriginPort=dead,
        Event=ORIGIN_ERROR,
        Status=521,
        OriginBytes=0,
    )


def test_522_connect_timeout_blackholed_origin(prism, netns):
    ns = netns()
    oport, eport = 17001, 17002
    ns.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(oport), "-j", "DROP")
    p = prism(cfg([app("blackhole", f"tcp/{eport}", f"tcp://127.0.0.1:{oport}")], connect_ms=500), netns=ns)
    s = connect("127.0.0.1", eport, sock=ns.socket())
    cport = s.getsockname()[1]
    t0 = time.monotonic()
    data, err = recv_until_eof(s, timeout=10)
    waited = time.monotonic() - t0
    s.close()
    assert data == b"", f"client got bytes: {data!r}"
    assert waited >= 0.3, f"the client was closed after {waited:.2f}s, before connect_ms=500 could expire"
    _, d = p.conn_events(cport, "127.0.0.1")
    check_record(d, Application="blackhole", OriginIP="127.0.0.1", OriginPort=oport, Event=ORIGIN_ERROR, Status=522)


def test_523_origin_unreachable(prism, netns):
    ns = netns()  # only lo: 198.18.77.1 has no route
    eport = 17003
    p = prism(cfg([app("noroute", f"tcp/{eport}", "tcp://198.18.77.1:80")]), netns=ns)
    s = connect("127.0.0.1", eport, sock=ns.socket())
    cport = s.getsockname()[1]
    data, err = recv_until_eof(s, timeout=5)
    s.close()
    assert data == b"", f"client got bytes: {data!r}"
    _, d = p.conn_events(cport, "127.0.0.1")
    check_record(d, Application="noroute", OriginIP="198.18.77.1", OriginPort=80, Event=ORIGIN_ERROR, Status=523)


def test_failover_past_a_blackholed_origin(prism, origins, netns):
    """Several origin_direct entries: one that times out is skipped for the next."""
    ns = netns()
    dead, eport = 17005, 17006
    ns.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(dead), "-j", "DROP")
    echo = origins.echo(port=17007, sock_factory=ns.socket)
    p = prism(cfg([app("fo2", f"tcp/{eport}", [f"tcp://127.0.0.1:{dead}", echo.addr])], connect_ms=300), netns=ns)
    s = connect("127.0.0.1", eport, sock=ns.socket())
    cport = s.getsockname()[1]
    s.sendall(b"after-timeout")
    assert recv_exact(s, 13) == b"after-timeout", "no echo after failing over from a blackholed origin"
    s.close()
    _, d = p.conn_events(cport)
    check_record(d, Application="fo2", OriginPort=17007, Event=DISCONNECT, Status=200, ClientBytes=13, OriginBytes=13)


# ---------------------------------------------------------------------------------
# resets


def test_444_origin_reset(prism, origins, ports):
    prefix = b"partial-data-before-reset"

    def origin(conn, peer, server):
        conn.sendall(prefix)
        time.sleep(0.3)
        set_rst_on_close(conn)
        conn.close()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(cfg([app("orst", f"tcp/{eport}", o.addr)]))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    data, err = recv_until_eof(s, timeout=5)
    s.close()
    assert data == prefix, f"client must get exactly the bytes sent before the reset: {data!r} ({err!r})"
    _, d = p.conn_events(cport)
    check_record(d, Application="orst", OriginPort=o.port, Event=DISCONNECT, Status=444, OriginBytes=len(prefix), ClientBytes=0)


def test_499_client_reset(prism, origins, ports):
    got = {"n": 0}
    lock = threading.Lock()

    def origin(conn, peer, server):  # reads and keeps the connection open
        conn.settimeout(15)
        while True:
            try:
                d = conn.recv(65536)
            except OSError:
                break
            if not d:
                break
            with lock:
                got["n"] += len(d)
        conn.close()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(cfg([app("crst", f"tcp/{eport}", o.addr)]))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    s.sendall(b"c" * 1000)
    wait_until(lambda: got["n"] == 1000, timeout=5, msg="the origin to receive the client's 1000 bytes")
    set_rst_on_close(s)
    s.close()
    _, d = p.conn_events(cport)
    check_record(d, Application="crst", Event=DISCONNECT, Status=499, ClientBytes=1000, OriginBytes=0)


# ---------------------------------------------------------------------------------
# broken pipes: the peer closed fully (FIN), then data keeps coming its way


def test_448_origin_broken_pipe(prism, origins, ports):
    closed = threading.Event()

    def origin(conn, peer, server):  # close() at once: FIN, then RST for any data
        conn.close()
        closed.set()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(cfg([app("opipe", f"tcp/{eport}", o.addr)]))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    assert closed.wait(5), "origin never accepted"
    time.sleep(0.2)  # the origin's FIN reaches prism before any client byte
    stop = threading.Event()
    t = threading.Thread(target=keep_writing, args=(s, stop, 10), daemon=True)
    t.start()
    try:
        wait_until(lambda: closing_seen(p, cport), timeout=10, msg="a closing record while the client keeps writing")
    finally:
        stop.set()
        t.join(5)
        s.close()
    _, d = p.conn_events(cport)
    check_record(d, Application="opipe", Event=DISCONNECT, Status=448, OriginBytes=0)


def test_498_client_broken_pipe(prism, origins, ports):
    client_closed = threading.Event()
    stop = threading.Event()

    def origin(conn, peer, server):
        conn.sendall(b"o" * 1000)
        client_closed.wait(10)
        keep_writing(conn, stop, 10)
        conn.close()

    o = origins.scripted(origin)
    eport = ports()
    p = prism(cfg([app("cpipe", f"tcp/{eport}", o.addr)]))
    s = connect("127.0.0.1", eport)
    cport = s.getsockname()[1]
    assert recv_exact(s, 1000) == b"o" * 1000
    s.close()  # nothing unread: a FIN, not a RST
    client_closed.set()
    try:
        wait_until(lambda: closing_seen(p, cport), timeout=10, msg="a closing record while the origin keeps writing")
    finally:
        stop.set()
    _, d = p.conn_events(cport)
    check_record(d, Application="cpipe", Event=DISCONNECT, Status=498, ClientBytes=0)


# ---------------------------------------------------------------------------------
# timeouts on established connections (TCP_USER_TIMEOUT), inside a namespace


def test_445_origin_timeout_established(prism, origins, netns):
    ns = netns()
    oport, eport = 17011, 17012
    echo = origins.echo(port=oport, sock_factory=ns.socket)
    p = prism(cfg([app("otmo", f"tcp/{eport}", echo.addr)], user_timeout_ms=1500), netns=ns)
    s = connect("127.0.0.1", eport, sock=ns.socket())
    cport = s.getsockname()[1]
    s.sendall(b"e" * 100)
    assert recv_exact(s, 100) == b"e" * 100, "no echo before the blackhole"
    ns.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(oport), "-j", "DROP")
    stop = threading.Event()
    t = threading.Thread(target=keep_writing, args=(s, stop, 15, b"e" * 1024), daemon=True)
    t.start()
    try:
        wait_until(lambda: closing_seen(p, cport), timeout=15, msg="a closing record after the origin went silent")
    finally:
        stop.set()
        t.join(5)
        s.close()
    _, d = p.conn_events(cport)
    check_record(d, Application="otmo", OriginPort=oport, Event=DISCONNECT, Status=445)


def test_497_client_timeout_established(prism, origins, netns):
    ns = netns()
    oport, eport = 17021, 17022
    stop = threading.Event()

    def origin(conn, peer, server):
        conn.sendall(b"o" * 1000)
        keep_writing(conn, stop, 20, b"o" * 1024)
        conn.close()

    o = origins.scripted(origin, port=oport, sock_factory=ns.socket)
    p = prism(cfg([app("ctmo", f"tcp/{eport}", o.addr)], user_timeout_ms=1500), netns=ns)
    s = connect("127.0.0.1", eport, sock=ns.socket())
    cport = s.getsockname()[1]
    try:
        assert recv_exact(s, 1000) == b"o" * 1000, "no data before the blackhole"
        ns.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(cport), "-j", "DROP")
        wait_until(lambda: closing_seen(p, cport), timeout=15, msg="a closing record after the client went silent")
    finally:
        stop.set()
        s.close()
    _, d = p.conn_events(cport)
    check_record(d, Application="ctmo", Event=DISCONNECT, Status=497)

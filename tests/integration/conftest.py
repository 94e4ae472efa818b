"""Shared fixtures for prism's integration tests (issue 2).

Run by Debian's interpreter: tests/integration/run.sh. Everything here talks only to
loopback (127.0.0.0/8, ::1) or to network namespaces that a test creates itself.

Fixtures
  ports        free-port picker (checks 127.0.0.1 and ::1, TCP and UDP)
  procs        spawn(): every process started is killed by PID in a finalizer
  prism        factory: prism(config, netns=None) -> started Prism instance
  origins      factory for echo / sink / scripted origins (Python threads)
  netns        factory: a uniquely named namespace with lo up, deleted at teardown
  tmp_path     (pytest) per-test temporary directory
"""

import contextlib
import ctypes
import hashlib
import itertools
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRISM_BIN = os.environ.get("PRISM_BIN", os.path.join(REPO, "build", "prism"))
# Set by `make san-integration`: PRISM_BIN is the ASan+UBSan build. Each prism a test
# started is then stopped with SIGTERM at its end, so that LeakSanitizer runs at exit,
# and its log is searched for the sanitizers' reports.
SANITIZED = os.environ.get("PRISM_SANITIZED") == "1"
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")

# Ports below the ephemeral range (ip_local_port_range is 20000-65000 here), so an
# outgoing connection of some other process never takes the port we picked.
PORT_LO, PORT_HI = 10000, 19999

READY_RE = re.compile(r"\bready\b", re.IGNORECASE)


# --------------------------------------------------------------------------------
# small helpers


def wait_until(fn, timeout=5.0, interval=0.02, msg="condition"):
    """Polls fn() until it returns a true value; returns it, or fails after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported below
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {msg}{extra}")
        time.sleep(interval)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect(host, port, timeout=5.0, sock=None, source=None):
    s = sock or socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source is not None:
        s.bind(source)
    s.connect((host, port))
    return s


def recv_exact(s, n, timeout=10.0):
    """Reads exactly n bytes; fails with what was received if the peer stops early."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out: got {len(buf)} of {n} bytes: {bytes(buf[:80])!r}")
        s.settimeout(left)
        chunk = s.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise AssertionError(f"EOF after {len(buf)} of {n} bytes: {bytes(buf[:80])!r}")
        buf += chunk
    return bytes(buf)


def recv_until_eof(s, timeout=10.0, limit=1 << 30):
    """Reads until EOF. Returns (data, error) where error is None or the OSError."""
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for EOF after {len(buf)} bytes")
        s.settimeout(left)
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError as e:
            return bytes(buf), e
        if not chunk:
            return bytes(buf), None
        buf += chunk
        if len(buf) > limit:
            raise AssertionError("peer sent more than expected")


def set_rst_on_close(s):
    """SO_LINGER {1, 0}: close() sends RST instead of FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def echo_roundtrip(host, port, payload=b"ping\n", timeout=5.0, sock_factory=None):
    s = sock_factory(family_of(host)) if sock_factory else None
    s = connect(host, port, timeout, sock=s)
    try:
        s.sendall(payload)
        got = recv_exact(s, len(payload), timeout)
        assert got == payload, f"echo mismatch: sent {payload!r}, got {got!r}"
        return s.getsockname()[:2]
    finally:
        s.close()


def is_refused(host, port, timeout=2.0, sock_factory=None):
    s = sock_factory(family_of(host)) if sock_factory else socket.socket(family_of(host))
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


class PrngStream:
    """A seeded stream of random bytes written in random sizes. Data come from an
    8 MiB pool at PRNG-chosen offsets, so generating a GiB costs almost nothing; the
    sender hashes what it wrote, the receiver what it read."""

    _pool = None

    @classmethod
    def pool(cls):
        if cls._pool is None:
            cls._pool = random.Random(0x5EED).randbytes(8 << 20)
        return cls._pool

    def __init__(self, seed, total, max_write=256 * 1024):
        self.rng = random.Random(seed)
        self.total = total
        self.max_write = max_write

    def chunks(self):
        mv = memoryview(self.pool())
        left = self.total
        while left:
            size = min(left, self.rng.randint(1, self.max_write))
            off = self.rng.randint(0, len(mv) - size)
            yield mv[off : off + size]
            left -= size


def send_stream(s, seed, total, max_write=256 * 1024):
    h = hashlib.sha256()
    n = 0
    for c in PrngStream(seed, total, max_write).chunks():
        s.sendall(c)
        h.update(c)
        n += len(c)
    return n, h.hexdigest()


def recv_stream(s, max_read=1 << 20):
    """Reads to EOF, hashing; returns (count, sha256 hex)."""
    h = hashlib.sha256()
    buf = bytearray(max_read)
    mv = memoryview(buf)
    n = 0
    while True:
        k = s.recv_into(buf)
        if not k:
            return n, h.hexdigest()
        h.update(mv[:k])
        n += k


class Thread(threading.Thread):
    """A daemon thread that keeps its result or exception for join_result()."""

    def __init__(self, fn, *args, name=None, **kw):
        super().__init__(daemon=True, name=name)
        self.fn, self.args, self.kw = fn, args, kw
        self.result = None
        self.exc = None

    def run(self):
        try:
            self.result = self.fn(*self.args, **self.kw)
        except BaseException as e:  # noqa: BLE001 - re-raised in join_result
            self.exc = e

    def join_result(self, timeout=60.0):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"thread {self.name or self.fn.__name__} did not finish in {timeout}s")
        if self.exc is not None:
            raise self.exc
        return self.result


# --------------------------------------------------------------------------------
# ports


class PortPicker:
    def __init__(self):
        self.rng = random.Random(os.getpid() ^ int(time.time() * 1000))
        self.taken = set()

    @staticmethod
    def _bindable(port, hosts):
        for host in hosts:
            for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(family_of(host), typ)
                try:
                    if typ == socket.SOCK_STREAM:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((host, port))
                except OSError:
                    return False
                finally:
                    s.close()
        return True

    def range(self, n, hosts=("127.0.0.1", "::1")):
        """n consecutive ports free on every host given."""
        for _ in range(2000):
            base = self.rng.randint(PORT_LO, PORT_HI - n)
            ports = list(range(base, base + n))
            if any(p in self.taken for p in ports):
                continue
            if all(self._bindable(p, hosts) for p in ports):
                self.taken.update(ports)
                return ports
        raise AssertionError(f"no {n} consecutive free ports found")

    def __call__(self, hosts=("127.0.0.1", "::1")):
        return self.range(1, hosts)[0]


@pytest.fixture
def ports():
    return PortPicker()


# --------------------------------------------------------------------------------
# processes


class Procs:
    def __init__(self):
        self.items = []

    def spawn(self, args, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(args, **kw)
        self.items.append(p)
        return p

    def cleanup(self):
        for p in reversed(self.items):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for p in reversed(self.items):
            try:
                p.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(5)


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.cleanup()


# --------------------------------------------------------------------------------
# network namespaces

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_ns_counter = itertools.count()


def run(args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class NetNS:
    """A namespace with only lo (127.0.0.1 and ::1) up. Sockets made by socket() live in
    it, whatever thread later uses them; exec_prefix runs a program inside it."""

    def __init__(self, name):
        self.name = name
        self.path = f"/var/run/netns/{name}"
        self.exec_prefix = ["ip", "netns", "exec", name]

    def run(self, args, check=True):
        return run(self.exec_prefix + list(args), check=check)

    def iptables(self, *args):
        return self.run(["iptables", "-w", *args])

    def _in_ns(self, fn):
        """Runs fn() on a fresh thread that has joined this namespace."""
        box = {}

        def body():
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({self.name}): {os.strerror(e)}")
            finally:
                os.close(fd)
            box["v"] = fn()

        t = Thread(body)
        t.start()
        t.join_result(10)
        return box["v"]

    def socket(self, family=socket.AF_INET, typ=socket.SOCK_STREAM):
        return self._in_ns(lambda: socket.socket(family, typ))


@pytest.fixture
def netns():
    made = []

    def make():
        name = f"prismt-{os.getpid()}-{next(_ns_counter)}-{random.randint(0, 1 << 20):x}"
        run(["ip", "netns", "add", name])
        ns = NetNS(name)
        made.append(ns)
        ns.run(["ip", "link", "set", "lo", "up"])
        return ns

    yield make
    for ns in made:
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30)


# --------------------------------------------------------------------------------
# origins (Python threads)


class Server:
    """Accepts on (host, port) and runs handler(conn, peer, server) on a thread per
    connection. Keeps every accepted socket, and closes all of them at teardown."""

    def __init__(self, handler, host="127.0.0.1", port=0, sock_factory=None, backlog=1024):
        fam = family_of(host)
        self.sock = sock_factory(fam) if sock_factory else socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.lock = threading.Lock()
        self.conns = []  # accepted sockets
        self.peers = []  # (ip, port) of each accepted connection
        self.errors = []  # exceptions raised by handlers
        self.accepted = threading.Semaphore(0)
        self.closed = False
        self.threads = []
        self.accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.accept_thread.start()

    @property
    def addr(self):
        return f"tcp://[{self.host}]:{self.port}" if ":" in self.host else f"tcp://{self.host}:{self.port}"

    def _accept_loop(self):
        while not self.closed:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                conn, peer = self.sock.accept()
            except OSError:
                if self.closed:
                    return
                continue
            with self.lock:
                self.conns.append(conn)
                self.peers.append(peer[:2])
            t = threading.Thread(target=self._run, args=(conn, peer[:2]), daemon=True)
            self.threads.append(t)
            t.start()
            self.accepted.release()

    def _run(self, conn, peer):
        try:
            self.handler(conn, peer, self)
        except Exception as e:  # noqa: BLE001 - recorded for the test
            if not self.closed:
                with self.lock:
                    self.errors.append(e)

    def wait_accept(self, timeout=5.0):
        assert self.accepted.acquire(timeout=timeout), f"origin {self.host}:{self.port} saw no connection in {timeout}s"
        with self.lock:
            return self.conns[-1]

    def count(self):
        with self.lock:
            return len(self.conns)

    def close(self):
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.close()


def echo_handler(conn, peer, server):
    conn.settimeout(None)
    while True:
        try:
            d = conn.recv(65536)
        except OSError:
            break
        if not d:
            break
        try:
            conn.sendall(d)
        except OSError:
            break
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
    # wait for the peer's close before closing, so close() never turns into RST
    with contextlib.suppress(OSError):
        conn.settimeout(10)
        while conn.recv(65536):
            pass
    conn.close()


def sink_handler(conn, peer, server):
    n = 0
    conn.settimeout(None)
    while True:
        try:
            d = conn.recv(1 << 20)
        except OSError:
            break
        if not d:
            break
        n += len(d)
    with server.lock:
        server.sunk = getattr(server, "sunk", 0) + n
    conn.close()


class Origins:
    def __init__(self):
        self.servers = []

    def echo(self, host="127.0.0.1", port=0, sock_factory=None):
        return self.scripted(echo_handler, host, port, sock_factory)

    def sink(self, host="127.0.0.1", port=0, sock_factory=None):
        return self.scripted(sink_handler, host, port, sock_factory)

    def scripted(self, handler, host="127.0.0.1", port=0, sock_factory=None):
        s = Server(handler, host, port, sock_factory)
        self.servers.append(s)
        return s

    def close(self):
        for s in self.servers:
            s.close()


@pytest.fixture
def origins():
    o = Origins()
    yield o
    o.close()


# --------------------------------------------------------------------------------
# prism


def app(app_id, protocol, origin, pp="off", **extra):
    """A Spectrum TCP app object. origin: one origin URI or a list of them."""
    a = {
        "id": app_id,
        "protocol": protocol,
        "dns": {"type": "CNAME", "name": f"{app_id}.example.com"},
        "origin_direct": origin if isinstance(origin, list) else [origin],
        "proxy_protocol": pp,
    }
    a.update(extra)
    return a


class Prism:
    CLOSING = ("disconnect", "originError", "clientFiltered")

    def __init__(self, procs, workdir, config, netns=None, ports=None):
        self.procs = procs
        self.workdir = workdir
        self.netns = netns
        self.data_dir = os.path.join(workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.config_path = os.path.join(workdir, "prism.json")
        self.events_path = os.path.join(self.data_dir, "events.log")
        self.log_path = os.path.join(workdir, "prism.stderr")
        self.lines = []
        self.cond = threading.Condition()
        self.proc = None
        self.stopped = False  # set once the test sends SIGTERM/SIGINT itself
        self.exec_prefix = []  # a command prism runs under (setpriv ..., say)
        self.base = {
            "colo": "TST",
            "data_dir": self.data_dir,
            "workers": 2,
        }
        if ports is not None:
            # the control plane may open these; inside a fresh netns any port is free
            self.base["api"] = {"listen": f"127.0.0.1:{ports()}"}
            self.base["dns"] = {"listen": f"127.0.0.1:{ports()}"}
        self.config = None
        self.write_config(config)

    # -- config
    def full_config(self, config):
        c = json.loads(json.dumps(self.base))
        for k, v in config.items():
            c[k] = v
        return c

    def write_config(self, config, raw=None):
        """Writes the file atomically (prism may read it at any moment)."""
        if raw is None:
            self.config = self.full_config(config)
            text = json.dumps(self.config, indent=2)
        else:
            text = raw
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    # -- process
    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=15.0, wait_ready=True):
        args = self.exec_prefix + [PRISM_BIN, "serve", "--config", self.config_path]
        if self.netns is not None:
            args = self.netns.exec_prefix + args  # ip netns exec execs: same PID
        self.proc = self.procs.spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.workdir)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if wait_ready:
            self.wait_log(READY_RE, timeout=timeout, what="the 'ready' line")
        return self

    def _read_stderr(self):
        with open(self.log_path, "w") as logf:
            for raw in iter(self.proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                logf.write(line + "\n")
                logf.flush()
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def log_text(self, last=None):
        with self.cond:
            ls = self.lines[-last:] if last else list(self.lines)
        return "\n".join(ls)

    def wait_log(self, pattern, timeout=5.0, start=0, what=None):
        """Waits for a stderr line (index >= start) matching pattern; returns it."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        return line
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise AssertionError(
                        f"prism exited with {self.proc.returncode} before {what or pattern!r}; log:\n{self.log_text(40)}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {what or repr(pattern)} in prism's log after {timeout}s; log:\n{self.log_text(40)}"
                    )
                self.cond.wait(min(left, 0.1))

    def line_count(self):
        with self.cond:
            return len(self.lines)

    def signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            self.stopped = True
        os.kill(self.proc.pid, sig)

    def reload(self, config=None, raw=None, settle=0.3):
        """Writes the new file (if given) and sends SIGHUP. prism promises no reload
        log line, so this waits for any new log line or settle seconds."""
        if config is not None or raw is not None:
            self.write_config(config, raw=raw)
        n = self.line_count()
        self.signal(signal.SIGHUP)
        if settle:
            with contextlib.suppress(AssertionError):
                self.wait_log(r".", timeout=settle, start=n)
            time.sleep(0.05)
        return n

    def stop(self, sig=None, timeout=15.0):
        """Sends sig (SIGTERM) and waits; returns the exit code (fails if it does not exit)."""
        sig = sig or signal.SIGTERM
        self.stopped = True
        if self.proc.poll() is None:
            self.signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"prism did not exit within {timeout}s of {sig!r}; log:\n{self.log_text(30)}")
        self.reader.join(5)
        return rc

    def alive(self):
        return self.proc.poll() is None

    # -- event log
    def read_events(self):
        try:
            with open(self.events_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for i, line in enumerate(data.split(b"\n")[:-1]):  # only complete lines
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise AssertionError(f"events.log line {i + 1} is not JSON ({e}): {line[:200]!r}")
            assert isinstance(rec, dict), f"events.log line {i + 1} is not an object: {line[:200]!r}"
            out.append(rec)
        return out

    def events(self, count=None, where=None, timeout=5.0):
        """Records (optionally filtered by where(rec)), polling until at least count
        of them are there. The control thread writes in batches (~200 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            recs = [r for r in self.read_events() if where is None or where(r)]
            if count is None or len(recs) >= count:
                return recs
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"expected {count} event records, found {len(recs)} after {timeout}s:\n"
                    + "\n".join(json.dumps(r) for r in recs[-10:])
                    + f"\nprism log:\n{self.log_text(20)}"
                )
            time.sleep(0.05)

    def conn_events(self, client_port, client_ip=None, timeout=8.0, settle=0.3):
        """The records of one connection, found by client port (and IP): waits for the
        closing record, then checks there is exactly one connect record first and
        exactly one closing record. Returns (connect, closing)."""

        def mine(r):
            return r.get("ClientPort") == client_port and (client_ip is None or r.get("ClientIP") == client_ip)

        recs = self.events(2, where=mine, timeout=timeout)
        wait_until(
            lambda: any(r.get("Event") in self.CLOSING for r in self.events(where=mine)),
            timeout=timeout,
            msg=f"a closing record for client port {client_port}; have {self.events(where=mine)}",
        )
        time.sleep(settle)  # a duplicate closing record would show up by now
        recs = self.events(where=mine)
        desc = "\n".join(json.dumps(r) for r in recs)
        assert len(recs) == 2, f"expected exactly 2 records (connect + closing) for client port {client_port}, got:\n{desc}"
        c, d = recs
        assert c.get("Event") == "connect" and c.get("Status") == 0, f"first record must be connect/0:\n{desc}"
        assert d.get("Event") in self.CLOSING, f"second record must be a closing one:\n{desc}"
        return c, d


REQUIRED_FIELDS = {
    "Application": str,
    "ClientIP": str,
    "ClientPort": int,
    "ClientProto": str,
    "ClientBytes": int,
    "OriginIP": str,
    "OriginPort": int,
    "OriginProto": str,
    "OriginBytes": int,
    "ColoCode": str,
    "ConnectTimestamp": (str, int, float),
    "Event": str,
    "ProxyProtocol": str,
    "Status": int,
    "Timestamp": (str, int, float),
}


def check_record(rec, **expect):
    """Every Logpush field present with its JSON type, then each expected value."""
    for k, t in REQUIRED_FIELDS.items():
        assert k in rec, f"event record lacks {k}: {json.dumps(rec)}"
        assert isinstance(rec[k], t) and not isinstance(rec[k], bool), f"{k} has the wrong JSON type: {json.dumps(rec)}"
    assert "DisconnectTimestamp" in rec, f"event record lacks DisconnectTimestamp: {json.dumps(rec)}"
    if rec["Event"] != "connect":
        assert rec["DisconnectTimestamp"] is not None, f"closing record has no DisconnectTimestamp: {json.dumps(rec)}"
    for k, v in expect.items():
        assert rec.get(k) == v, f"event record field {k}: expected {v!r}, got {rec.get(k)!r} in {json.dumps(rec)}"


@pytest.fixture
def prism(procs, tmp_path, ports):
    """prism(config, netns=None, start=True) -> Prism. config holds node keys
    (apps, edge, timeouts, ...); colo, data_dir, workers, api and dns are filled in."""
    made = []

    def make(config, netns=None, start=True, ready_timeout=15.0):
        if not os.access(PRISM_BIN, os.X_OK):
            pytest.fail(f"{PRISM_BIN} not found or not executable: run `make` first")
        wd = os.path.join(str(tmp_path), f"prism{len(made)}")
        os.makedirs(wd)
        p = Prism(procs, wd, config, netns=netns, ports=ports if netns is None else _ns_ports())
        made.append(p)
        if start:
            p.start(timeout=ready_timeout)
        return p

    yield make
    crashed = []
    for p in made:
        if p.proc is None:
            continue
        rc = p.proc.poll()
        if rc is not None and not p.stopped:
            # nobody asked it to stop: a crash the test's own checks may have missed
            crashed.append(f"prism (pid {p.proc.pid}) exited on its own with {rc}")
        if rc is None and SANITIZED:
            # An exit of its own, so that LeakSanitizer looks for leaks; a drain that
            # outlasts the wait (connections the test left open) is cut short below.
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                rc = p.proc.wait(3)
            if rc not in (None, 0):
                crashed.append(f"prism (pid {p.proc.pid}) exited with {rc} on SIGTERM after the test")
        if rc is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.proc.wait(5)
        if SANITIZED:
            p.reader.join(5)
            reports = [line for line in p.lines if SANITIZER_RE.search(line)]
            if reports:
                crashed.append(f"prism (pid {p.proc.pid}) reported {reports[0]!r}")
        print(f"---- prism log ({p.log_path}), last lines:\n{p.log_text(60)}")
    if crashed:
        pytest.fail("; ".join(crashed))


def _ns_ports():
    it = itertools.count(19000)
    return lambda: next(it)


def prism_cli(*args, timeout=20.0, cwd=None):
    """Runs build/prism with args; returns CompletedProcess (text)."""
    if not os.access(PRISM_BIN, os.X_OK):
        pytest.fail(f"{PRISM_BIN} not found or not executable: run `make` first")
    return subprocess.run(
        [PRISM_BIN, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL
    )

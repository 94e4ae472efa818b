"""Issue 3: malformed and wrong requests, each answered with its documented HTTP
status and error code (docs/API.md, "Errors"), in the v4 envelope, and never
a 500. One prism serves the whole table; the last request checks it still works."""

import pytest

from api_helpers import Api, app_body, error_code, wait_healthz

MISSING = "0123456789abcdef0123456789abcdef"


def valid_app(port, origin, name="a.example.com"):
    return app_body(port, origin, name)


# (id, method, path, body or callable(ctx) -> body, expected status, expected code)
# Paths: {z} = a zone, {a} = an API app in it, {f} = a file-managed app in it,
# {m} = an id that exists nowhere. Bodies are str/bytes (sent as is) or objects (JSON).
CASES = [
    # routing
    ("unknown path", "GET", "/nope", None, 404, 7003),
    ("outside /client/v4", "GET", "//v4/zones", None, 404, 7003),
    ("zones PATCH", "PATCH", "/zones", None, 405, 7001),
    ("zones PUT", "PUT", "/zones", "{}", 405, 7001),
    ("zones DELETE", "DELETE", "/zones", None, 405, 7001),
    ("zone POST", "POST", "/zones/{z}", "{}", 405, 7001),
    ("app PATCH", "PATCH", "/zones/{z}/spectrum/apps/{a}", "{}", 405, 7001),
    ("app POST", "POST", "/zones/{z}/spectrum/apps/{a}", "{}", 405, 7001),
    ("apps DELETE", "DELETE", "/zones/{z}/spectrum/apps", None, 405, 7001),
    ("missing zone", "GET", "/zones/{m}", None, 404, 7003),
    ("non-hex zone", "GET", "/zones/not-an-id", None, 404, 7003),
    ("zone id not UTF-8", "GET", "/zones/..%14%86%86", None, 404, 7003),
    ("app id cut mid-character", "GET", "/zones/{z}/spectrum/apps/" + "a" * 63 + "%C3%A9", None, 404, 7003),
    ("apps of missing zone", "GET", "/zones/{m}/spectrum/apps", None, 404, 7003),
    ("missing app", "GET", "/zones/{z}/spectrum/apps/{m}", None, 404, 7003),
    ("delete missing app", "DELETE", "/zones/{z}/spectrum/apps/{m}", None, 404, 7003),
    ("put missing app", "PUT", "/zones/{z}/spectrum/apps/{m}", lambda c: valid_app(c["p2"], c["o"]), 404, 7003),
    # zone bodies
    ("zone empty body", "POST", "/zones", "", 400, 6007),
    ("zone truncated JSON", "POST", "/zones", '{"name":', 400, 6007),
    ("zone body is an array", "POST", "/zones", "[1]", 400, 6007),
    ("zone body is a string", "POST", "/zones", '"example.org"', 400, 6007),
    ("zone trailing garbage", "POST", "/zones", '{"name":"b.example"} x', 400, 6007),
    ("zone duplicate key", "POST", "/zones", '{"name":"b.example","name":"c.example"}', 400, 6007),
    ("zone invalid UTF-8", "POST", "/zones", b'{"name":"\xff.example"}', 400, 6007),
    ("zone lone surrogate", "POST", "/zones", '{"name":"\\ud800.example"}', 400, 6007),
    ("zone unknown field", "POST", "/zones", {"name": "b.example", "colour": 1}, 400, 10012),
    ("zone name wrong type", "POST", "/zones", {"name": 5}, 400, 6101),
    ("zone name missing", "POST", "/zones", {}, 400, 6101),
    ("zone name one label", "POST", "/zones", {"name": "localhost"}, 400, 6101),
    ("zone name leading hyphen", "POST", "/zones", {"name": "-a.example"}, 400, 6101),
    ("zone name empty label", "POST", "/zones", {"name": "a..example"}, 400, 6101),
    ("zone name bad char", "POST", "/zones", {"name": "a_b.example"}, 400, 6101),
    ("zone name too long", "POST", "/zones", {"name": ("a" * 63 + ".") * 4 + "com"}, 400, 6101),
    ("zone duplicate", "POST", "/zones", {"name": "example.com"}, 400, 1061),
    ("zone unknown account", "POST", "/zones", {"name": "b.example", "account": {"id": MISSING}}, 400, 6101),
    ("zone account wrong type", "POST", "/zones", {"name": "b.example", "account": "x"}, 400, 6101),
    ("zone type partial", "POST", "/zones", {"name": "b.example", "type": "partial"}, 400, 6101),
    ("zone body over 1 MiB", "POST", "/zones", lambda c: b"{" + b" " * (2 << 20) + b"}", 413, 6100),
    # app bodies
    ("app empty body", "POST", "/zones/{z}/spectrum/apps", "", 400, 6007),
    ("app truncated JSON", "POST", "/zones/{z}/spectrum/apps", '{"protocol":"tcp/22"', 400, 6007),
    ("app invalid UTF-8", "POST", "/zones/{z}/spectrum/apps", b'{"protocol":"tcp/\xc3\x28"}', 400, 6007),
    ("app unknown field", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), bogus=1), 400, 10012),
    ("app protocol wrong type", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), protocol=22), 400, 11104),
    ("app protocol bad", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), protocol="sctp/22"), 400, 11101),
    ("app port out of range", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), protocol="tcp/70000"), 400, 11101),
    ("app both origins", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), origin_dns={"name": "o.example.com"}, origin_port=22), 400, 11000),
    ("app no origin", "POST", "/zones/{z}/spectrum/apps", {"protocol": "tcp/22", "dns": {"type": "CNAME", "name": "a.example.com"}}, 400, 11000),
    ("app unbracketed IPv6 origin", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), origin_direct=["tcp://::1:22"]), 400, 11002),
    ("app origin not an address", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), origin_direct=["tcp://nope"]), 400, 11002),
    ("app dns ADDRESS with dynamic edge", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), dns={"type": "ADDRESS", "name": "a.example.com"}), 400, 11004),
    ("app port range mismatch", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), protocol=f"tcp/{c['p2']}-{c['p2'] + 1}", origin_direct=["tcp://127.0.0.1:2000-2002"]), 400, 11102),
    ("app proxy_protocol bad", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), proxy_protocol="v3"), 400, 11104),
    ("app ip_firewall wrong type", "POST", "/zones/{z}/spectrum/apps", lambda c: dict(valid_app(c["p2"], c["o"]), ip_firewall="yes"), 400, 11104),
    ("app dns.name outside zone", "POST", "/zones/{z}/spectrum/apps", lambda c: valid_app(c["p2"], c["o"], name="a.example.org"), 400, 16001),
    ("app port taken by a file app", "POST", "/zones/{z}/spectrum/apps", lambda c: valid_app(c["pf"], c["o"]), 400, 11103),
    ("app port taken by an API app", "POST", "/zones/{z}/spectrum/apps", lambda c: valid_app(c["p1"], c["o"], name="b.example.com"), 400, 11103),
    ("put file-managed app", "PUT", "/zones/{z}/spectrum/apps/{f}", lambda c: valid_app(c["p2"], c["o"]), 400, 11150),
    ("delete file-managed app", "DELETE", "/zones/{z}/spectrum/apps/{f}", None, 400, 11150),
    # query parameters
    ("per_page 0", "GET", "/zones/{z}/spectrum/apps?per_page=0", None, 400, 6102),
    ("per_page 101", "GET", "/zones/{z}/spectrum/apps?per_page=101", None, 400, 6102),
    ("per_page not a number", "GET", "/zones/{z}/spectrum/apps?per_page=abc", None, 400, 6102),
    ("page 0", "GET", "/zones/{z}/spectrum/apps?page=0", None, 400, 6102),
    ("page negative", "GET", "/zones/{z}/spectrum/apps?page=-1", None, 400, 6102),
    ("order unknown", "GET", "/zones/{z}/spectrum/apps?order=colour", None, 400, 6102),
    ("direction unknown", "GET", "/zones/{z}/spectrum/apps?direction=sideways", None, 400, 6102),
    ("page twice", "GET", "/zones/{z}/spectrum/apps?page=1&page=2", None, 400, 6102),
    ("zones per_page too big", "GET", "/zones?per_page=1000", None, 400, 6102),
]


def send_big(api, method, path, body):
    """Sends a body over the limit on a raw socket: prism answers 413 as soon as it
    sees Content-Length and closes, so the send may fail half way; the answer is
    read either way."""
    import socket

    s = socket.create_connection((api.host, api.port), timeout=10)
    try:
        s.sendall(
            f"{method} /client/v4{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        try:
            s.sendall(body)
        except OSError:
            pass
        data = b""
        while True:
            try:
                d = s.recv(65536)
            except OSError:
                break
            if not d:
                break
            data += d
    finally:
        s.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
    return status, headers, payload


@pytest.fixture
def served(prism, origins, ports):
    echo = origins.echo("127.0.0.1")
    pf, p1, p2 = ports(), ports(), ports()
    file_app = {
        "id": "fileapp",
        "protocol": f"tcp/{pf}",
        "dns": {"type": "CNAME", "name": "file.example.com"},
        "origin_direct": [echo.addr],
    }
    p = prism({"edge": {"addresses": ["127.0.0.1"]}, "apps": [file_app]})
    api = Api(p)
    wait_healthz(api)
    zone = api.make_zone("example.com")
    app = api.make_app(zone["id"], p1, echo.addr, "a.example.com")
    ctx = {"z": zone["id"], "a": app["id"], "f": "fileapp", "m": MISSING, "o": echo.addr, "pf": pf, "p1": p1, "p2": p2}
    return p, api, ctx


def test_malformed_table(served):
    p, api, ctx = served
    assert len(CASES) >= 40
    failures = []
    for name, method, path, body, want_status, want_code in CASES:
        path = path.format(**ctx)
        if callable(body):
            body = body(ctx)
        if isinstance(body, bytes) and len(body) > (1 << 20):
            status, headers, data = send_big(api, method, path, body)
        else:
            status, headers, data = api.raw(method, path, body)
        try:
            import json

            env = json.loads(data)
            got = (status, error_code(env))
            assert headers.get("content-type", "").startswith("application/json")
            assert env["success"] is False and env["result"] is None
            assert env["errors"][0]["message"], "empty message"
        except Exception as e:  # noqa: BLE001 - collected below
            failures.append(f"{name}: {method} {path}: {status} {data[:200]!r} ({e})")
            continue
        if got != (want_status, want_code):
            failures.append(f"{name}: {method} {path}: want {want_status}/{want_code}, got {got}: {env['errors'][0]['message']}")
    assert not failures, "\n".join(failures)
    # still serving, nothing changed by the rejected requests
    apps = api.ok("GET", f"/zones/{ctx['z']}/spectrum/apps")
    assert sorted(a["id"] for a in apps) == sorted([ctx["a"], "fileapp"])
    assert p.alive()


def test_messages_name_the_field(served):
    p, api, ctx = served
    status, env = api.post(f"/zones/{ctx['z']}/spectrum/apps", dict(valid_app(ctx["p2"], ctx["o"]), proxy_protocol="v3"))
    assert status == 400 and "proxy_protocol" in env["errors"][0]["message"], env
    status, env = api.post("/zones", {"name": "b.example", "colour": 1})
    assert status == 400 and "colour" in env["errors"][0]["message"], env
    status, env = api.get(f"/zones/{ctx['z']}/spectrum/apps?per_page=0")
    assert "per_page" in env["errors"][0]["message"], env


def test_chunked_body_over_limit(served):
    """A chunked body (no Content-Length) that grows past 1 MiB: 413, not buffered."""
    import socket

    p, api, ctx = served
    s = socket.create_connection((api.host, api.port), timeout=10)
    try:
        s.sendall(
            f"POST /client/v4/zones HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api.token}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        for _ in range(20):
            s.sendall(b"10000\r\n" + chunk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            d = s.recv(65536)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.1 413"), data[:200]
    finally:
        s.close()
    assert api.ok("GET", "/zones")

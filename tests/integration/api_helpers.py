"""Helpers for the API tests (issue 3): a tiny client for prism's v4 API.

    api = Api(prism_instance)            # reads api.listen and <data_dir>/api-token
    status, body = api.get("/zones")     # paths are under /client/v4 unless they start with //
    zone = api.make_zone("example.com")
    app = api.make_app(zone["id"], port, origin_addr, name="ssh.example.com")

Everything talks to 127.0.0.1 only. Each call opens its own connection, so a test
that breaks one (413, garbage) does not poison the next.
"""

import http.client
import json
import os
import socket
import time

V4 = "/client/v4"


class Api:
    def __init__(self, prism, token=None):
        host, port = prism.config["api"]["listen"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.prism = prism
        self._token = token

    @property
    def token(self):
        if self._token is None:
            with open(os.path.join(self.prism.data_dir, "api-token")) as f:
                self._token = f.read().strip()
        return self._token

    @property
    def base_url(self):
        return f"http://{self.host}:{self.port}{V4}"

    def raw(self, method, path, body=None, headers=None, token=None, auth=True, timeout=20):
        """Returns (status, headers dict, raw bytes)."""
        if not path.startswith("//"):
            path = V4 + path
        else:
            path = path[1:]
        h = {}
        if auth:
            h["Authorization"] = f"Bearer {token if token is not None else self.token}"
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def call(self, method, path, body=None, **kw):
        """Returns (status, parsed envelope); checks the envelope's shape."""
        status, headers, data = self.raw(method, path, body, **kw)
        assert headers.get("content-type", "").startswith("application/json"), (status, headers, data[:200])
        env = json.loads(data)
        check_envelope(env, status)
        return status, env

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def ok(self, method, path, body=None, **kw):
        status, env = self.call(method, path, body, **kw)
        assert status == 200, f"{method} {path}: {status} {env}"
        return env["result"]

    def make_zone(self, name):
        return self.ok("POST", "/zones", {"name": name})

    def make_app(self, zone_id, port, origin, name, **extra):
        body = app_body(port, origin, name, **extra)
        return self.ok("POST", f"/zones/{zone_id}/spectrum/apps", body)


def app_body(port, origin, name, proto="tcp", **extra):
    b = {
        "protocol": f"{proto}/{port}",
        "dns": {"type": "CNAME", "name": name},
        "origin_direct": [origin if isinstance(origin, str) else f"{proto}://{origin[0]}:{origin[1]}"],
    }
    b.update(extra)
    return b


def check_envelope(env, status):
    assert isinstance(env, dict), env
    for k in ("success", "errors", "messages", "result"):
        assert k in env, f"envelope lacks {k}: {env}"
    assert env["success"] is (status < 400), f"success={env['success']} with HTTP {status}: {env}"
    if status >= 400:
        assert env["result"] is None and env["errors"], env
        for e in env["errors"]:
            assert isinstance(e["code"], int) and e["code"] >= 1000 and isinstance(e["message"], str), env


def error_code(env):
    return env["errors"][0]["code"]


def api_config(ports, **extra):
    """A node config for API tests: no file apps unless given."""
    c = {"edge": {"addresses": ["127.0.0.1"]}}
    c.update(extra)
    return c


def wait_healthz(api, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if api.raw("GET", "//healthz", auth=False)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("/healthz never answered 200")


def refused_or_closed(port, host="127.0.0.1", timeout=2.0):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def restart(prism, timeout=15.0):
    """Starts a stopped Prism again on the same config and data_dir, and waits for
    the new 'ready' line (Prism.start() would match the previous run's)."""
    import signal as _signal

    if prism.alive():
        assert prism.stop(_signal.SIGTERM) == 0
    n = prism.line_count()
    prism.start(wait_ready=False)
    prism.wait_log(r"\bready\b", timeout=timeout, start=n, what="the 'ready' line after restart")
    return prism

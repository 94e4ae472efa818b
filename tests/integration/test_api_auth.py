"""Issue 3: the auth matrix. Missing, malformed and unknown tokens are 401 with
code 10000; a valid token without the route's permission, or limited to other
zones, is 403 with code 9109 (docs/API.md, "Tokens")."""

import os
import stat

from api_helpers import Api, error_code, wait_healthz
from conftest import prism_cli


def make_token(p, name, perms, zones=None):
    args = ["token", "create", "--name", name, "--permissions", perms, "--config", p.config_path]
    if zones:
        args += ["--zones", zones]
    r = prism_cli(*args)
    assert r.returncode == 0, r.stderr
    tok = r.stdout.strip()
    assert 40 <= len(tok) <= 80, tok
    return tok


def test_auth_matrix(prism, origins, ports):
    echo = origins.echo()
    p = prism({"edge": {"addresses": ["127.0.0.1"]}})
    api = Api(p)
    wait_healthz(api)
    token_file = os.path.join(p.data_dir, "api-token")
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    za = api.make_zone("a.example")
    zb = api.make_zone("b.example")
    app_b = api.make_app(zb["id"], ports(), echo.addr, "x.b.example")

    read_only = make_token(p, "ro", "zone_read")
    analytics = make_token(p, "an", "analytics_read")
    zone_a = make_token(p, "za", "zone_read,zone_settings_write", zones=za["id"])
    zone_a_by_name = make_token(p, "zan", "zone_read", zones="a.example")

    cases = [
        # (what, method, path, body, kwargs, status, code)
        ("no token", "GET", "/zones", None, {"auth": False}, 401, 10000),
        ("not Bearer", "GET", "/zones", None, {"auth": False, "headers": {"Authorization": f"Basic {api.token}"}}, 401, 10000),
        ("too short", "GET", "/zones", None, {"token": "abc"}, 401, 10000),
        ("bad characters", "GET", "/zones", None, {"token": "!" * 40}, 401, 10000),
        ("too long", "GET", "/zones", None, {"token": "a" * 81}, 401, 10000),
        ("unknown", "GET", "/zones", None, {"token": "u" * 40}, 401, 10000),
        ("global API key headers", "GET", "/zones", None, {"auth": False, "headers": {"X-Auth-Email": "a@b.c", "X-Auth-Key": "k" * 37}}, 401, 10000),
        ("verify without token", "GET", "/user/tokens/verify", None, {"auth": False}, 401, 10000),
        ("wrong permission: list zones", "GET", "/zones", None, {"token": analytics}, 403, 9109),
        ("wrong permission: create zone", "POST", "/zones", {"name": "c.example"}, {"token": read_only}, 403, 9109),
        ("wrong permission: create app", "POST", f"/zones/{za['id']}/spectrum/apps", {"protocol": "tcp/1"}, {"token": read_only}, 403, 9109),
        ("wrong permission: delete app", "DELETE", f"/zones/{zb['id']}/spectrum/apps/{app_b['id']}", None, {"token": read_only}, 403, 9109),
        ("wrong zone: get", "GET", f"/zones/{zb['id']}", None, {"token": zone_a}, 403, 9109),
        ("wrong zone: list apps", "GET", f"/zones/{zb['id']}/spectrum/apps", None, {"token": zone_a}, 403, 9109),
        ("wrong zone: delete app", "DELETE", f"/zones/{zb['id']}/spectrum/apps/{app_b['id']}", None, {"token": zone_a}, 403, 9109),
        ("wrong zone by name", "GET", f"/zones/{zb['id']}/spectrum/apps", None, {"token": zone_a_by_name}, 403, 9109),
        ("zone-limited token creates a zone", "POST", "/zones", {"name": "c.example"}, {"token": zone_a}, 403, 9109),
    ]
    failures = []
    for what, method, path, body, kw, want_status, want_code in cases:
        status, env = api.call(method, path, body, **kw)
        if (status, error_code(env) if status >= 400 else None) != (want_status, want_code):
            failures.append(f"{what}: want {want_status}/{want_code}, got {status}: {env['errors']}")
    assert not failures, "\n".join(failures)

    # what the tokens may do
    assert api.ok("GET", "/user/tokens/verify", token=read_only)["status"] == "active"
    assert api.ok("GET", "/user/tokens/verify", token=analytics)["status"] == "active"
    assert [z["id"] for z in api.ok("GET", "/zones", token=zone_a)] == [za["id"]]
    assert api.ok("GET", f"/zones/{zb['id']}/spectrum/apps", token=read_only)[0]["id"] == app_b["id"]
    app_a = api.ok("POST", f"/zones/{za['id']}/spectrum/apps",
                   {"protocol": f"tcp/{ports()}", "dns": {"type": "CNAME", "name": "x.a.example"}, "origin_direct": [echo.addr]},
                   token=zone_a)
    assert api.ok("GET", f"/zones/{za['id']}/spectrum/apps", token=zone_a_by_name)[0]["id"] == app_a["id"]
    assert len(api.ok("GET", "/accounts", token=read_only)) == 1
    assert api.raw("GET", "//healthz", auth=False)[0] == 200

    # tokens never reach the log
    log = p.log_text()
    for t in (api.token, read_only, analytics, zone_a, zone_a_by_name):
        assert t not in log


def test_token_cli_rejects_bad_input(prism):
    p = prism({"edge": {"addresses": ["127.0.0.1"]}})
    r = prism_cli("token", "create", "--name", "x", "--permissions", "zone_read,fly", "--config", p.config_path)
    assert r.returncode == 2 and "fly" in r.stderr
    r = prism_cli("token", "create", "--permissions", "zone_read", "--config", p.config_path)
    assert r.returncode == 2
    r = prism_cli("token", "create", "--name", "x", "--permissions", "all", "--zones", "bad zone!", "--config", p.config_path)
    assert r.returncode == 2


def test_bootstrap_token_from_env(prism, monkeypatch):
    token = "env_" + "t" * 40
    monkeypatch.setenv("PRISM_API_TOKEN", token)
    p = prism({"edge": {"addresses": ["127.0.0.1"]}})
    api = Api(p, token=token)
    wait_healthz(api)
    assert api.ok("GET", "/user/tokens/verify")["status"] == "active"
    assert not os.path.exists(os.path.join(p.data_dir, "api-token"))
    assert "PRISM_API_TOKEN" in p.wait_log(r"\bready\b")
    assert token not in p.log_text()

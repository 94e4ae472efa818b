"""Issue 3: a restart brings back zones, apps and tokens from SQLite, and the apps
carry traffic again before any API call."""

import signal

from api_helpers import Api, restart, wait_healthz
from conftest import wait_until, echo_roundtrip, prism_cli


def test_restart_restores_everything(prism, origins, ports):
    echo = origins.echo()
    port1, port2 = ports(), ports()
    p = prism({"edge": {"addresses": ["127.0.0.1"]}})
    api = Api(p)
    wait_healthz(api)
    zone = api.make_zone("example.com")
    a1 = api.make_app(zone["id"], port1, echo.addr, "one.example.com")
    a2 = api.make_app(zone["id"], port2, echo.addr, "two.example.com", proxy_protocol="off", tls="off")
    a2 = api.ok("PUT", f"/zones/{zone['id']}/spectrum/apps/{a2['id']}",
                {"protocol": f"tcp/{port2}", "dns": {"type": "CNAME", "name": "two.example.com"}, "origin_direct": [echo.addr]})
    r = prism_cli("token", "create", "--name", "ci", "--permissions", "zone_read", "--config", p.config_path)
    assert r.returncode == 0, r.stderr
    ci_token = r.stdout.strip()
    echo_roundtrip("127.0.0.1", port1)

    assert p.stop(signal.SIGTERM) == 0
    restart(p)
    # traffic first, with no API call before it
    echo_roundtrip("127.0.0.1", port1)
    echo_roundtrip("127.0.0.1", port2)

    api2 = Api(p)
    assert api2.ok("GET", f"/zones/{zone['id']}")["name"] == "example.com"
    apps = {a["id"]: a for a in api2.ok("GET", f"/zones/{zone['id']}/spectrum/apps")}
    assert apps.keys() == {a1["id"], a2["id"]}
    assert apps[a1["id"]] == a1, "an app came back different"
    assert apps[a2["id"]] == a2
    assert api2.ok("GET", "/user/tokens/verify", token=ci_token)["status"] == "active"
    assert len(api2.ok("GET", "/accounts")) == 1

    # a deleted app stays deleted across a restart
    api2.ok("DELETE", f"/zones/{zone['id']}/spectrum/apps/{a1['id']}")
    assert p.stop(signal.SIGTERM) == 0
    restart(p)
    echo_roundtrip("127.0.0.1", port2)
    assert [a["id"] for a in Api(p).ok("GET", f"/zones/{zone['id']}/spectrum/apps")] == [a2["id"]]


def test_zone_delete_removes_its_apps(prism, origins, ports):
    from api_helpers import refused_or_closed

    echo = origins.echo()
    port = ports()
    p = prism({"edge": {"addresses": ["127.0.0.1"]}})
    api = Api(p)
    wait_healthz(api)
    zone = api.make_zone("example.com")
    api.make_app(zone["id"], port, echo.addr, "one.example.com")
    echo_roundtrip("127.0.0.1", port)
    assert api.ok("DELETE", f"/zones/{zone['id']}") == {"id": zone["id"]}
    wait_until(lambda: refused_or_closed(port), timeout=2.0, msg="the listener to close")
    status, env = api.get(f"/zones/{zone['id']}/spectrum/apps")
    assert status == 404
    assert p.stop(signal.SIGTERM) == 0
    restart(p)
    wait_until(lambda: refused_or_closed(port), timeout=2.0, msg="the listener to close")
    assert Api(p).ok("GET", "/zones") == []

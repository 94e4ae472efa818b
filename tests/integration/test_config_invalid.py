"""The node configuration file (issue 2, item 2): `prism check-config FILE` refuses
every invalid file with exit status 2 and one stderr line naming the app and the
field; valid files (with keys of features not built yet) pass; `serve` refuses an
invalid file with exit status 2 too. Also --help and --version."""

import copy
import json
import os

import pytest

from conftest import prism_cli


def base_app(**over):
    a = {
        "id": "web1",
        "protocol": "tcp/2201",
        "dns": {"type": "CNAME", "name": "web1.example.com"},
        "origin_direct": ["tcp://127.0.0.1:2222"],
        "proxy_protocol": "off",
    }
    a.update(over)
    return a


def without(d, key):
    d = dict(d)
    del d[key]
    return d


def with_app(**over):
    return {"apps": [base_app(**over)]}


# (test id, file content: dict or raw text, app named in the message or None,
#  words of which at least one must appear in the message: the field)
INVALID = [
    ("unknown-top-level-key", {"bogus_key": 1}, None, ["bogus_key"]),
    ("unknown-app-key", with_app(colour="red"), "web1", ["colour"]),
    ("unknown-timeouts-key", {"timeouts": {"connect_msec": 5}}, None, ["connect_msec"]),
    ("protocol-not-a-port", with_app(protocol="tcp/abc"), "web1", ["protocol"]),
    ("protocol-bad-transport", with_app(protocol="sctp/22"), "web1", ["protocol"]),
    ("protocol-port-0", with_app(protocol="tcp/0"), "web1", ["protocol"]),
    ("protocol-port-65536", with_app(protocol="tcp/65536"), "web1", ["protocol"]),
    ("protocol-reversed-range", with_app(protocol="tcp/2000-1000"), "web1", ["protocol"]),
    (
        "range-length-mismatch",
        with_app(protocol="tcp/1000-1010", origin_direct=["tcp://127.0.0.1:2000-2005"]),
        "web1",
        ["origin_direct", "protocol"],
    ),
    (
        "origin-range-for-single-port",
        with_app(protocol="tcp/1000", origin_direct=["tcp://127.0.0.1:2000-2001"]),
        "web1",
        ["origin_direct", "protocol"],
    ),
    ("ipv6-origin-without-brackets", with_app(origin_direct=["tcp://2001:db8::1:22"]), "web1", ["origin_direct"]),
    ("origin-bad-ipv4", with_app(origin_direct=["tcp://300.1.1.1:22"]), "web1", ["origin_direct"]),
    ("origin-no-port", with_app(origin_direct=["tcp://127.0.0.1"]), "web1", ["origin_direct"]),
    ("origin-udp-scheme-on-tcp-app", with_app(origin_direct=["udp://127.0.0.1:22"]), "web1", ["origin_direct"]),
    ("origin-empty-list", with_app(origin_direct=[]), "web1", ["origin_direct", "origin"]),
    (
        "both-origins",
        with_app(origin_dns={"name": "o.example.com"}, origin_port=22),
        "web1",
        ["origin_dns", "origin_direct"],
    ),
    ("no-origin", {"apps": [without(base_app(), "origin_direct")]}, "web1", ["origin"]),
    ("tls-full-not-built", with_app(tls="full"), "web1", ["tls"]),
    ("proxy-protocol-simple-on-tcp", with_app(proxy_protocol="simple"), "web1", ["proxy_protocol"]),
    ("proxy-protocol-unknown", with_app(proxy_protocol="v3"), "web1", ["proxy_protocol"]),
    (
        "duplicate-app-id",
        {"apps": [base_app(), base_app(protocol="tcp/2202", dns={"type": "CNAME", "name": "other.example.com"})]},
        "web1",
        ["id", "duplicate"],
    ),
    (
        "two-apps-one-port",
        {"apps": [base_app(), base_app(id="web2", dns={"type": "CNAME", "name": "web2.example.com"})]},
        "web2",
        ["protocol", "2201", "port"],
    ),
    ("workers-negative", {"workers": -1}, None, ["workers"]),
    ("workers-string", {"workers": "four"}, None, ["workers"]),
    ("edge-address-not-ip", {"edge": {"addresses": ["not-an-ip"]}}, None, ["addresses", "edge"]),
    ("edge-address-hostname", {"edge": {"addresses": ["localhost"]}}, None, ["addresses", "edge"]),
    ("json-syntax-error", '{"apps": [ {"id": "web1",, } ]', None, []),
    ("top-level-array", "[]", None, []),
    ("apps-not-a-list", {"apps": {"id": "web1"}}, None, ["apps"]),
    ("app-id-number", with_app(id=5), None, ["id"]),
    ("app-missing-id", {"apps": [without(base_app(), "id")]}, None, ["id"]),
    ("app-missing-protocol", {"apps": [without(base_app(), "protocol")]}, "web1", ["protocol"]),
    ("app-missing-dns", {"apps": [without(base_app(), "dns")]}, "web1", ["dns"]),
    ("dns-bad-name", with_app(dns={"type": "CNAME", "name": "bad name!"}), "web1", ["dns", "name"]),
    ("dns-bad-type", with_app(dns={"type": "MX", "name": "web1.example.com"}), "web1", ["dns", "type"]),
    ("origin-direct-not-list", with_app(origin_direct="tcp://127.0.0.1:22"), "web1", ["origin_direct"]),
    ("ip-firewall-not-bool", with_app(ip_firewall="yes"), "web1", ["ip_firewall"]),
    ("traffic-type-unknown", with_app(traffic_type="carrier-pigeon"), "web1", ["traffic_type"]),
    ("connect-ms-negative", {"timeouts": {"connect_ms": -5}}, None, ["connect_ms"]),
    ("connect-ms-string", {"timeouts": {"connect_ms": "10s"}}, None, ["connect_ms"]),
    ("api-listen-garbage", {"api": {"listen": "nonsense"}}, None, ["listen", "api"]),
    ("colo-not-string", {"colo": 7}, None, ["colo"]),
]


def write(tmp_path, name, content):
    # a neutral file name: prism names the file in its message, and a name such as
    # "workers-negative.json" would satisfy the check for the field by itself
    path = os.path.join(str(tmp_path), "node.json")
    with open(path, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    return path


def test_catalogue_has_at_least_20_invalid_files():
    assert len(INVALID) >= 20


@pytest.mark.parametrize("name,content,app_id,fields", INVALID, ids=[c[0] for c in INVALID])
def test_check_config_refuses(tmp_path, name, content, app_id, fields):
    path = write(tmp_path, name, copy.deepcopy(content))
    r = prism_cli("check-config", path, cwd=str(tmp_path))
    assert r.returncode == 2, f"exit {r.returncode} (expected 2) for {name}; stderr: {r.stderr!r}"
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {r.stderr!r}"
    msg = lines[0].replace(path, "<file>")
    if app_id is not None:
        assert app_id in msg, f"message does not name app {app_id!r}: {msg!r}"
    if fields:
        assert any(f in msg for f in fields), f"message names none of {fields}: {msg!r}"


VALID = [
    ("empty-object", {}),
    ("one-app", with_app()),
    ("legacy-proxy-protocol-true-means-v1", with_app(proxy_protocol=True)),
    ("v1", with_app(proxy_protocol="v1")),
    ("v2", with_app(proxy_protocol="v2")),
    ("port-range", with_app(protocol="tcp/3000-3010", origin_direct=["tcp://127.0.0.1:4000-4010"])),
    ("bracketed-ipv6-origin", with_app(origin_direct=["tcp://[2001:db8::1]:22", "tcp://127.0.0.1:22"])),
    ("tls-off", with_app(tls="off")),
    (
        "every-documented-node-key",
        {
            "colo": "LAB",
            "data_dir": "./var",
            "workers": 0,
            "api": {"listen": "127.0.0.1:8080"},
            "dns": {"listen": "127.0.0.1:5353"},
            "edge": {"addresses": ["127.0.0.1", "::1"], "pool_v4": None, "pool_v6": None},
            "timeouts": {"connect_ms": 10000, "idle_ms": 0, "udp_idle_ms": 30000, "drain_ms": 30000, "user_timeout_ms": 30000},
            "geoip": {"country_db": None, "asn_db": None},
            "resolver": None,
            "tls": {"origin_ca_file": None},
            "store": "sqlite",
            "apps": [base_app()],
        },
    ),
]


@pytest.mark.parametrize("name,content", VALID, ids=[c[0] for c in VALID])
def test_check_config_accepts(tmp_path, name, content):
    """Guards the invalid cases: they fail for their one defect, not for the base."""
    content = copy.deepcopy(content)
    if "data_dir" in content:
        content["data_dir"] = os.path.join(str(tmp_path), "var")
    path = write(tmp_path, name, content)
    r = prism_cli("check-config", path, cwd=str(tmp_path))
    assert r.returncode == 0, f"valid file {name} refused (exit {r.returncode}): {r.stderr!r}"


def test_check_config_missing_file(tmp_path):
    r = prism_cli("check-config", os.path.join(str(tmp_path), "nope.json"))
    assert r.returncode == 2, f"exit {r.returncode} for a missing file; stderr {r.stderr!r}"
    assert "nope.json" in r.stderr, f"message does not name the file: {r.stderr!r}"


@pytest.mark.parametrize("name", ["unknown-top-level-key", "ipv6-origin-without-brackets", "json-syntax-error"])
def test_serve_refuses_invalid_file(tmp_path, name):
    content = next(c for c in INVALID if c[0] == name)[1]
    path = write(tmp_path, name, content)
    r = prism_cli("serve", "--config", path, timeout=15, cwd=str(tmp_path))
    assert r.returncode == 2, f"serve exited {r.returncode} (expected 2) on {name}; stderr: {r.stderr!r}"
    assert "ready" not in r.stderr.lower(), f"serve claimed ready with an invalid file: {r.stderr!r}"


def test_help_and_version():
    r = prism_cli("--help")
    assert r.returncode == 0, f"--help exited {r.returncode}: {r.stderr!r}"
    out = r.stdout + r.stderr
    assert "serve" in out and "check-config" in out, f"--help does not list the commands: {out!r}"
    r = prism_cli("--version")
    assert r.returncode == 0, f"--version exited {r.returncode}: {r.stderr!r}"
    assert "prism" in (r.stdout + r.stderr).lower(), f"--version output: {r.stdout!r} {r.stderr!r}"

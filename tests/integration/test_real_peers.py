"""Real peers behind prism (issue 2): nginx's stream module and HAProxy 2.6 as
PROXY-protocol-checking origins (v1 and v2, IPv4 and IPv6 clients), and OpenSSH."""

import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import app, check_record, connect, recv_exact, recv_until_eof, wait_until

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
SSHD = "/usr/sbin/sshd"
NGX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


def cfg(apps):
    return {"edge": {"addresses": ["127.0.0.1", "::1"]}, "timeouts": {"connect_ms": 2000, "drain_ms": 1000}, "apps": apps}


def listening(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def read_file(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------------------------
# nginx


@pytest.fixture
def nginx(procs, tmp_path, ports):
    """Starts nginx (stream module) with a proxy_protocol listener on 127.0.0.1 that
    answers with what it parsed and logs $proxy_protocol_addr:$proxy_protocol_port."""
    for path in (NGINX, NGX_STREAM):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: run scripts/install-deps.sh test")
    d = tmp_path / "nginx"
    d.mkdir()
    port = ports(hosts=("127.0.0.1",))
    access = d / "access.log"
    conf = d / "nginx.conf"
    conf.write_text(
        f"""
load_module {NGX_STREAM};
master_process off;
error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 128; }}
stream {{
    log_format pp '$proxy_protocol_addr:$proxy_protocol_port '
                  'server=$proxy_protocol_server_addr:$proxy_protocol_server_port '
                  'peer=$remote_addr';
    access_log {access} pp;
    server {{
        listen 127.0.0.1:{port} proxy_protocol;
        return "addr=$proxy_protocol_addr port=$proxy_protocol_port server=$proxy_protocol_server_addr:$proxy_protocol_server_port\\n";
    }}
}}
"""
    )
    proc = procs.spawn([NGINX, "-c", str(conf), "-p", str(d), "-g", "daemon off;"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: listening("127.0.0.1", port) or proc.poll() is not None, timeout=10, msg="nginx to listen")
    except AssertionError:
        pass
    if proc.poll() is not None:
        pytest.fail(f"nginx exited {proc.returncode}: {proc.stderr.read().decode()} {read_file(d / 'error.log')}")

    class N:
        pass

    n = N()
    n.port, n.access, n.dir, n.proc = port, access, d, proc
    return n


@pytest.mark.parametrize("pp", ["v1", "v2"])
@pytest.mark.parametrize("client_ip", ["127.0.0.1", "::1"])
def test_nginx_sees_client_address(prism, nginx, ports, pp, client_ip):
    eport = ports()
    p = prism(cfg([app("ngx", f"tcp/{eport}", f"tcp://127.0.0.1:{nginx.port}", pp=pp)]))
    s = connect(client_ip, eport)
    cport = s.getsockname()[1]
    reply, err = recv_until_eof(s, timeout=5)
    s.close()
    want = f"addr={client_ip} port={cport} server={client_ip}:{eport}\n".encode()
    assert reply == want, (
        f"nginx parsed a different PROXY {pp} header: got {reply!r}, expected {want!r} "
        f"(error log: {read_file(nginx.dir / 'error.log')[-500:]})"
    )
    line = f"{client_ip}:{cport} server={client_ip}:{eport} peer=127.0.0.1"
    wait_until(lambda: line in read_file(nginx.access), timeout=5,
               msg=f"nginx access log line {line!r}; log: {read_file(nginx.access)!r}")
    _, d = p.conn_events(cport, client_ip)
    check_record(d, Status=200, ProxyProtocol=pp, OriginPort=nginx.port, OriginBytes=len(want))


# ---------------------------------------------------------------------------------
# HAProxy


@pytest.fixture
def haproxy(procs, tmp_path, ports, origins):
    """HAProxy 2.6 with accept-proxy in front of an echo backend, logging what it
    parsed to stdout (testing.md 3.0)."""
    if not os.path.exists(HAPROXY):
        pytest.fail(f"{HAPROXY} is missing: run scripts/install-deps.sh test")
    echo = origins.echo()
    port = ports(hosts=("127.0.0.1",))
    d = tmp_path / "haproxy"
    d.mkdir()
    conf = d / "haproxy.cfg"
    conf.write_text(
        f"""
global
    log stdout format raw local0
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend rx_tcp
    mode tcp
    bind 127.0.0.1:{port} accept-proxy
    log global
    log-format "PPLOG ci=%ci cp=%cp fi=%fi fp=%fp"
    default_backend echo
backend echo
    mode tcp
    server e 127.0.0.1:{echo.port}
"""
    )
    out = d / "stdout.log"
    outf = open(out, "w")
    proc = procs.spawn([HAPROXY, "-db", "-f", str(conf)], stdout=outf, stderr=subprocess.STDOUT)
    outf.close()
    try:
        wait_until(lambda: listening("127.0.0.1", port) or proc.poll() is not None, timeout=10, msg="haproxy to listen")
    except AssertionError:
        pass
    if proc.poll() is not None:
        pytest.fail(f"haproxy exited {proc.returncode}: {read_file(out)}")

    class H:
        pass

    h = H()
    h.port, h.out, h.proc = port, out, proc
    return h


@pytest.mark.parametrize("pp", ["v1", "v2"])
def test_haproxy_accepts_every_header(prism, haproxy, ports, pp):
    eport = ports()
    p = prism(cfg([app("hap", f"tcp/{eport}", f"tcp://127.0.0.1:{haproxy.port}", pp=pp)]))
    seen = []
    for i in range(6):  # both families, several connections each
        client_ip = "127.0.0.1" if i % 2 == 0 else "::1"
        s = connect(client_ip, eport)
        cport = s.getsockname()[1]
        msg = b"through haproxy %d\n" % i
        s.sendall(msg)
        try:
            got = recv_exact(s, len(msg), timeout=5)
        except AssertionError as e:
            raise AssertionError(f"haproxy refused prism's PROXY {pp} header for {client_ip}: {e}; "
                                 f"haproxy said: {read_file(haproxy.out)[-800:]}")
        assert got == msg
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s, timeout=5)
        s.close()
        seen.append((client_ip, cport))
    for client_ip, cport in seen:
        want = f"PPLOG ci={client_ip} cp={cport} fi={client_ip} fp={eport}"
        wait_until(lambda: want in read_file(haproxy.out), timeout=5,
                   msg=f"haproxy log {want!r}; it logged: {read_file(haproxy.out)[-800:]!r}")
        _, d = p.conn_events(cport, client_ip, settle=0)
        check_record(d, Status=200, ProxyProtocol=pp, OriginPort=haproxy.port)
    assert "PPLOG" in read_file(haproxy.out)
    bad = [l for l in read_file(haproxy.out).splitlines() if "PPLOG" not in l and re.search(r"(?i)error|invalid|reject", l)]
    assert not bad, f"haproxy complained: {bad}"


# ---------------------------------------------------------------------------------
# OpenSSH


def test_ssh_through_prism(prism, procs, tmp_path, ports):
    for tool in (SSHD, "ssh", "ssh-keygen"):
        if not shutil.which(tool) and not os.path.exists(tool):
            pytest.fail(f"{tool} is missing: run scripts/install-deps.sh test")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    d = tmp_path / "ssh"
    d.mkdir()
    hostkey, userkey = d / "host_ed25519", d / "id_ed25519"
    for k in (hostkey, userkey):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True, timeout=30)
    auth = d / "authorized_keys"
    auth.write_text((d / "id_ed25519.pub").read_text())
    os.chmod(auth, 0o600)
    sport = ports(hosts=("127.0.0.1",))
    conf = d / "sshd_config"
    conf.write_text(
        f"""
Port {sport}
ListenAddress 127.0.0.1
HostKey {hostkey}
PidFile {d}/sshd.pid
AuthorizedKeysFile {auth}
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
"""
    )
    log = d / "sshd.log"
    logf = open(log, "w")
    sshd = procs.spawn([SSHD, "-D", "-e", "-f", str(conf)], stdout=logf, stderr=subprocess.STDOUT)
    logf.close()
    wait_until(lambda: listening("127.0.0.1", sport) or sshd.poll() is not None, timeout=10, msg="sshd to listen")
    assert sshd.poll() is None, f"sshd exited {sshd.returncode}: {read_file(log)}"

    eport = ports()
    p = prism(cfg([app("ssh", f"tcp/{eport}", f"tcp://127.0.0.1:{sport}")]))
    cmd = ["ssh", "-F", "/dev/null", "-p", str(eport), "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
           "-o", "ConnectTimeout=10", "-i", str(userkey), "root@127.0.0.1", "echo hello-through-prism"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout == "hello-through-prism\n", (
        f"ssh through prism: rc {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr[-500:]!r}; "
        f"sshd log: {read_file(log)[-800:]}"
    )
    recs = p.events(2, where=lambda r: r.get("Application") == "ssh", timeout=5)
    closing = [r for r in recs if r["Event"] != "connect"]
    assert len(closing) == 1 and closing[0]["Status"] == 200, f"ssh connection records: {recs}"
    assert closing[0]["ClientBytes"] > 0 and closing[0]["OriginBytes"] > 0

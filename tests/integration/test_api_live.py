"""Issue 3: live apply. 50 creates, updates and deletes of other apps while 100
connections stream through one app: none is cut. An update of that app moves only
new connections; the live ones stay on the old origin."""

import threading
import time

from api_helpers import Api, app_body, refused_or_closed, wait_healthz
from conftest import wait_until, connect, echo_roundtrip, recv_exact


def test_changes_under_traffic(prism, origins, ports):
    echo1 = origins.echo()
    echo2 = origins.echo()
    port = ports()
    others = ports.range(40, hosts=("127.0.0.1",))
    p = prism({"edge": {"addresses": ["127.0.0.1"]}, "workers": 2})
    api = Api(p)
    wait_healthz(api)
    zone = api.make_zone("example.com")
    main = api.make_app(zone["id"], port, echo1.addr, "main.example.com")

    conns = [connect("127.0.0.1", port, timeout=10) for _ in range(100)]
    for i, s in enumerate(conns):
        s.sendall(b"%04d" % i)
        assert recv_exact(s, 4) == b"%04d" % i
    stop = threading.Event()
    errors = []
    rounds = [0]

    def stream():
        payload = bytes(range(256)) * 4
        while not stop.is_set():
            for s in conns:
                try:
                    s.sendall(payload)
                    assert recv_exact(s, len(payload), timeout=10) == payload
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))
                    return
            rounds[0] += 1

    t = threading.Thread(target=stream, daemon=True)
    t.start()

    # 50 changes of other apps: 20 creates, 15 updates, 15 deletes
    made = []
    for i in range(20):
        made.append(api.make_app(zone["id"], others[i], echo2.addr, f"o{i}.example.com"))
    for i in range(15):
        a = made[i]
        api.ok("PUT", f"/zones/{zone['id']}/spectrum/apps/{a['id']}", app_body(others[20 + i], echo2.addr, f"o{i}.example.com"))
    for i in range(15):
        api.ok("DELETE", f"/zones/{zone['id']}/spectrum/apps/{made[i]['id']}")
    # each change took effect at once
    echo_roundtrip("127.0.0.1", others[19])
    wait_until(lambda: refused_or_closed(others[0]), timeout=2.0, msg="the listener to close")

    time.sleep(0.3)
    stop.set()
    t.join(30)
    assert not errors, f"a live connection broke: {errors[:3]}"
    assert rounds[0] >= 1
    assert echo1.count() == 100

    # update the streamed app: new connections go to echo2, live ones stay on echo1
    before2 = echo2.count()
    api.ok("PUT", f"/zones/{zone['id']}/spectrum/apps/{main['id']}", app_body(port, echo2.addr, "main.example.com"))
    echo_roundtrip("127.0.0.1", port)
    assert echo2.count() == before2 + 1
    assert echo1.count() == 100
    for i, s in enumerate(conns):
        s.sendall(b"%04d" % i)
        assert recv_exact(s, 4) == b"%04d" % i, "a live connection changed after the update"
    for s in conns:
        s.close()
    assert p.alive()

"""Issue 3: the official Cloudflare npm SDK (pinned in sdk/package.json) drives
prism with only baseURL changed: zone, 120 apps through auto-pagination, get,
update, delete, BadRequestError 11000, NotFoundError, and traffic through an app
made with the SDK that stops once it is deleted. The SDK's dependencies are
installed here with `npm ci` when sdk/node_modules is missing."""

import os
import shutil
import subprocess

import pytest

from api_helpers import Api, wait_healthz

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk")


def ensure_sdk():
    if os.path.isdir(os.path.join(SDK_DIR, "node_modules", "cloudflare")):
        return
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.fail("node and npm are needed for the SDK test")
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SDK_DIR, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"npm ci failed:\n{r.stdout}\n{r.stderr}"


def test_sdk_end_to_end(prism, origins, ports):
    ensure_sdk()
    echo = origins.echo("127.0.0.1")
    edge = ports.range(121, hosts=("127.0.0.1",))[0]
    p = prism({"edge": {"addresses": ["127.0.0.1"]}, "workers": 2})
    api = Api(p)
    wait_healthz(api)
    env = dict(os.environ, PRISM_BASE_URL=api.base_url, PRISM_TOKEN=api.token, ORIGIN=echo.addr, EDGE_PORT=str(edge))
    r = subprocess.run(["node", "sdk_test.mjs"], cwd=SDK_DIR, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0 and r.stdout.strip().endswith("done"), (
        f"SDK script failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\nprism log:\n{p.log_text(30)}"
    )
    assert p.alive()
    assert api.token not in p.log_text(), "the token appeared in the log"

// tests/integration/sdk/sdk_test.mjs: drives prism's API with the official
// Cloudflare SDK (npm "cloudflare", pinned in package.json), as an operator's
// script would, changing only baseURL. Run by tests/integration/test_api_sdk.py.
//
// Env: PRISM_BASE_URL (http://127.0.0.1:PORT/client/v4), PRISM_TOKEN,
// ORIGIN (tcp://127.0.0.1:PORT, an echo server), EDGE_PORT (first of 121 free
// ports). Prints one line "ok <step>" per step; exits non-zero on the first failure.
import Cloudflare from "cloudflare";
import net from "node:net";
import assert from "node:assert/strict";

const cf = new Cloudflare({
  apiToken: process.env.PRISM_TOKEN,
  baseURL: process.env.PRISM_BASE_URL,
  maxRetries: 0,
  timeout: 20000,
});
const ORIGIN = process.env.ORIGIN;
const EDGE = Number(process.env.EDGE_PORT);
const N = 120;

function step(name) {
  console.log(`ok ${name}`);
}

// Connects to 127.0.0.1:port, sends a line, expects it back. Resolves true, false
// when the connection is refused, or "reset" when it is reset.
function echo(port, payload = "hello prism\n") {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    let got = "";
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`echo on ${port} timed out`)); }, 5000);
    s.on("connect", () => s.write(payload));
    s.on("data", (d) => {
      got += d.toString();
      if (got.length >= payload.length) {
        clearTimeout(timer);
        s.end();
        assert.equal(got, payload);
        resolve(true);
      }
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      if (e.code === "ECONNREFUSED") resolve(false);
      else if (e.code === "ECONNRESET") resolve("reset");
      else reject(e);
    });
  });
}

// Probes <port> until traffic flows (want true) or is refused (want false). A
// reset fails a probe that wants traffic. While a port is being closed, a client
// whose handshake completes between prism's last accept and its close is reset by
// the kernel, so there a reset only means "not closed yet".
async function waitEcho(port, want) {
  for (let i = 0; i < 50; i++) {
    const got = await echo(port);
    if (got === want) return;
    if (got === "reset" && want) throw new Error(`port ${port}: a connection was reset`);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`port ${port}: traffic ${want ? "never flowed" : "never stopped"}`);
}

const verify = await cf.user.tokens.verify();
assert.equal(verify.status, "active");
step("verify");

const zone = await cf.zones.create({ name: "sdk.example", account: {} });
assert.match(zone.id, /^[0-9a-f]{32}$/);
assert.equal(zone.name, "sdk.example");
step("zone create");

const ids = [];
for (let i = 0; i < N; i++) {
  const app = await cf.spectrum.apps.create({
    zone_id: zone.id,
    protocol: `tcp/${EDGE + i}`,
    dns: { type: "CNAME", name: `app${String(i).padStart(3, "0")}.sdk.example` },
    origin_direct: [ORIGIN],
    traffic_type: "direct",
    proxy_protocol: "off",
    tls: "off",
    ip_firewall: false,
    edge_ips: { type: "dynamic", connectivity: "all" },
    argo_smart_routing: false,
  });
  assert.match(app.id, /^[0-9a-f]{32}$/);
  ids.push(app.id);
}
step("create 120");

// Auto-pagination: the SDK asks page 2, 3, ... until a page is empty.
const seen = [];
for await (const app of cf.spectrum.apps.list({ zone_id: zone.id, per_page: 25 })) seen.push(app.id);
assert.equal(seen.length, N);
assert.equal(new Set(seen).size, N);
assert.deepEqual([...seen].sort(), [...ids].sort());
step("list 120 with auto-pagination");

const first = await cf.spectrum.apps.get(ids[0], { zone_id: zone.id });
assert.equal(first.id, ids[0]);
assert.equal(first.dns.name, "app000.sdk.example");
assert.equal(first.tls, "off");
assert.match(first.created_on, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
step("get");

await waitEcho(EDGE, true);
step("traffic flows through an SDK-made app");

const updated = await cf.spectrum.apps.update(ids[1], {
  zone_id: zone.id,
  protocol: `tcp/${EDGE + N}`,
  dns: { type: "CNAME", name: "moved.sdk.example" },
  origin_direct: [ORIGIN],
});
assert.equal(updated.id, ids[1]);
assert.equal(updated.protocol, `tcp/${EDGE + N}`);
assert.equal(updated.created_on, (await cf.spectrum.apps.get(ids[1], { zone_id: zone.id })).created_on);
await waitEcho(EDGE + N, true);
await waitEcho(EDGE + 1, false);
step("update");

try {
  await cf.spectrum.apps.create({
    zone_id: zone.id,
    protocol: "tcp/1",
    dns: { type: "CNAME", name: "both.sdk.example" },
    origin_direct: [ORIGIN],
    origin_dns: { name: "origin.sdk.example" },
    origin_port: 22,
  });
  throw new Error("an app with both origins was accepted");
} catch (e) {
  assert.ok(e instanceof Cloudflare.BadRequestError, `want BadRequestError, got ${e}`);
  assert.equal(e.status, 400);
  assert.equal(e.errors[0].code, 11000);
}
step("BadRequestError 11000");

const del = await cf.spectrum.apps.delete(ids[0], { zone_id: zone.id });
assert.equal(del.id, ids[0]);
await waitEcho(EDGE, false);
step("delete stops traffic");

try {
  await cf.spectrum.apps.get(ids[0], { zone_id: zone.id });
  throw new Error("a deleted app was found");
} catch (e) {
  assert.ok(e instanceof Cloudflare.NotFoundError, `want NotFoundError, got ${e}`);
}
step("NotFoundError");

for (const id of ids.slice(1)) await cf.spectrum.apps.delete(id, { zone_id: zone.id });
const rest = await cf.spectrum.apps.list({ zone_id: zone.id });
assert.equal(rest.result.length, 0);
await cf.zones.delete({ zone_id: zone.id });
step("cleanup");
console.log("done");

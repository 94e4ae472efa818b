#!/usr/bin/python3
"""bench/report.py: turns the JSON lines of bench/run.sh into docs/BENCHMARKS.md.

Usage: /usr/bin/python3 bench/report.py build/bench/results-<ts>.jsonl [docs/BENCHMARKS.md]

Standard library only (Debian's python3). Every figure is the median over the rounds of
one configuration; the spread is min-max over the same rounds. Ratios are the target's
median over the reference's median, whatever the direction ("lower is better" metrics
want ratios below 1). Peers are haproxy-splice, haproxy-busy, haproxy, nginx and socat; the issue's
targets (issue #5) are checked on the 1-worker configuration. A run with the prism-b target (a
second prism, for an A/B in the same rounds) gets a section that compares it with prism round by
round; prism-b is never a peer and never the one the targets are checked on.
"""
import json
import os
import statistics
import sys
from collections import defaultdict

TARGETS = ["direct", "prism", "prism-b", "haproxy-splice", "haproxy-busy", "haproxy", "nginx", "socat"]
PEERS = ["haproxy-splice", "haproxy-busy", "haproxy", "nginx", "socat"]
HAPROXY = ["haproxy-splice", "haproxy-busy", "haproxy"]
CONFIG_TITLES = {
    "1w": "1 worker: proxy pinned to CPU 0, load tools and origins on CPU 1",
    "2w": "2 workers, nothing pinned",
}


def cpu(r):
    return r.get("proxy_cpu_s")


def per_core(value, r):
    """<value> (an amount moved during the test) per CPU-second of the proxy."""
    c = cpu(r)
    return value / c if c else None


def idle_per_conn(field, n):
    def get(r):
        if r["target"] == "direct" and field in ("pss_kb", "rss_kb"):
            return None  # no proxy in between: only the kernel figures mean something
        d = r["data"]
        for s in d["stages"]:
            if s["n"] == n:
                delta = s[field] - d["before"][field]
                return delta * (4096 if field == "tcp_mem_pages" else 1024) / n
        return None
    return get


def udp_recv(r):
    return sum(s["recv"] for s in r["data"]["steps"])


def load_busy(r):
    """Busy share of the pinned load CPU during the test (1w only; run.sh load_ticks)."""
    return r.get("load_cpu_busy")


def load_metric(key, test, label):
    return (key, test, label + ": load CPU busy", "cores", None, load_busy)


def busy_metric(key, test, label):
    return (key, test, label + ": proxy cores busy", "cores", None,
            lambda r: cpu(r) / r["wall_s"] if cpu(r) is not None and r["wall_s"] else None)


def bulk_metrics(test, label):
    return [
        (test + "_gbps", test, label, "Gbit/s", "high", lambda r: r["data"]["bps"] / 1e9),
        (test + "_core", test, label + ", per busy proxy core", "Gbit/s per core", "high",
         lambda r: per_core(r["data"]["bytes"] * 8 / 1e9, r)),
        busy_metric(test + "_busy", test, label),
        load_metric(test + "_load", test, label),
    ]


# (key, test, label, unit, better, value(record) or None)
METRICS = (
    bulk_metrics("bulk1", "TCP bulk, 1 stream")
    + bulk_metrics("bulk8", "TCP bulk, 8 streams")
    + [
        ("conn_rate", "connrate", "New connections", "conn/s", "high",
         lambda r: r["data"]["conn_per_s"]),
        ("conn_core", "connrate", "New connections per busy proxy core", "conn/s per core",
         "high", lambda r: per_core(r["data"]["conns"], r)),
        ("conn_p50", "connrate", "Connect time p50 (64 in flight)", "us", "low",
         lambda r: r["data"]["connect_p50_us"]),
        ("conn_p99", "connrate", "Connect time p99 (64 in flight)", "us", "low",
         lambda r: r["data"]["connect_p99_us"]),
        ("txn_p99", "connrate", "Connect+request+reply p99", "us", "low",
         lambda r: r["data"]["txn_p99_us"]),
        busy_metric("conn_busy", "connrate", "New connections"),
        load_metric("conn_load", "connrate", "New connections"),
        ("conn_err", "connrate", "Failed connections", "count", "low",
         lambda r: sum(r["data"][k] for k in ("err_connect", "err_reset", "err_timeout", "err_addr"))),
        ("rtt_p50", "pingpong", "Ping-pong 64 B round trip p50", "us", "low",
         lambda r: r["data"]["rtt_p50_us"]),
        ("rtt_p99", "pingpong", "Ping-pong 64 B round trip p99", "us", "low",
         lambda r: r["data"]["rtt_p99_us"]),
        load_metric("rtt_load", "pingpong", "Ping-pong"),
        ("udp_rate", "udp", "UDP 64 B echo, sustained (<1% loss)", "datagrams/s", "high",
         lambda r: r["data"]["sustained_rate"]),
        ("udp_core", "udp", "UDP datagrams echoed per proxy CPU-second", "datagrams/s per core",
         "high", lambda r: per_core(udp_recv(r), r)),
    ]
)


def idle_metrics(ns):
    out = []
    for n in ns:
        out += [
            ("pss_%d" % n, "idle", "Proxy PSS per idle connection, N=%d" % n, "bytes", "low",
             idle_per_conn("pss_kb", n)),
            ("rss_%d" % n, "idle", "Proxy RSS per idle connection, N=%d" % n, "bytes", "low",
             idle_per_conn("rss_kb", n)),
            ("slab_%d" % n, "idle", "Kernel unreclaimable slab per connection, N=%d (machine-wide)" % n,
             "bytes", "low", idle_per_conn("sunreclaim_kb", n)),
            ("sock_%d" % n, "idle", "Kernel TCP buffer memory per connection, N=%d (machine-wide)" % n,
             "bytes", "low", idle_per_conn("tcp_mem_pages", n)),
        ]
    return out


def fmt(v, unit=""):
    if v is None:
        return "–"
    a = abs(v)
    if unit == "cores":
        return "%.2f" % v
    if a >= 10000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_ratio(v):
    return "–" if v is None else "%.2f×" % v


class Results:
    def __init__(self, path):
        self.meta, self.end = {}, {}
        self.configs_text = []
        self.rounds = []
        # (config, target, test) -> list of records with status ok
        self.ok = defaultdict(list)
        # (config, target, test) -> list of (status, reason) for the others
        self.bad = defaultdict(list)
        self.insn = {}
        self.syscalls = {}
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                rec = json.loads(line)
                kind = rec.get("type")
                if kind == "meta":
                    self.meta = rec
                elif kind == "end":
                    self.end = rec
                elif kind == "config":
                    self.configs_text.append(rec)
                elif kind == "round":
                    self.rounds.append(rec)
                elif kind == "result":
                    key = (rec["config"], rec["target"], rec["test"])
                    if rec["test"] in ("insn", "syscalls"):
                        if rec["status"] == "ok":
                            getattr(self, rec["test"])[rec["target"]] = rec["data"]
                        else:
                            self.bad[key].append((rec["status"], rec.get("reason", "")))
                    elif rec["status"] == "ok" and rec.get("data") is not None:
                        self.ok[key].append(rec)
                    else:
                        self.bad[key].append((rec["status"], rec.get("reason", "")))
        self.configs = [c for c in self.meta.get("configs", ["1w", "2w"])
                        if any(k[0] == c for k in list(self.ok) + list(self.bad))]
        present = {k[1] for k in list(self.ok) + list(self.bad)}
        self.targets = [t for t in TARGETS if t in present]
        ns = self.meta.get("params", {}).get("idle_n", [5000, 9000])
        self.metrics = METRICS[:]
        self.metrics[-2:-2] = idle_metrics(ns)
        self.idle_ns = ns

    def each(self, config, target, metric):
        """(record, value) for each ok record of <metric>'s test that yields a value."""
        key, test, _, _, _, get = metric
        for r in self.ok.get((config, target, test), []):
            try:
                v = get(r)
            except (KeyError, TypeError, ZeroDivisionError):
                v = None
            if v is not None:
                yield r, v

    def values(self, config, target, metric):
        return [v for _, v in self.each(config, target, metric)]

    def median(self, config, target, metric):
        v = self.values(config, target, metric)
        return statistics.median(v) if v else None

    def status(self, config, target, test):
        bad = self.bad.get((config, target, test), [])
        if self.ok.get((config, target, test)):
            return "ok"
        if bad:
            return bad[0][0]
        return None


def best(values, better):
    vals = [(v, t) for t, v in values if v is not None]
    if not vals or better is None:
        return None, None
    return (max if better == "high" else min)(vals)


def best_median(med, targets, key, better):
    """best() of the medians med(t, <key>) of <targets>: (value, target)."""
    return best([(t, med(t, key)) for t in targets], better)


def metric_by_key(res, key):
    for m in res.metrics:
        if m[0] == key:
            return m
    raise KeyError(key)


def is_headline(m):
    """A metric of the medians tables: one with a better direction, and not kernel memory
    (its own table) or a busy share (the spread tables only)."""
    return m[4] is not None and not m[0].startswith(("slab_", "sock_"))


def summary_table(res, config, out):
    cols = [t for t in res.targets]
    out.append("| metric | unit | " + " | ".join(cols) + " | best peer | prism ÷ best peer | prism ÷ direct |")
    out.append("|---|---|" + "---:|" * (len(cols) + 3))
    for m in res.metrics:
        key, test, label, unit, better, _ = m
        if not is_headline(m):
            continue
        meds = {t: res.median(config, t, m) for t in cols}
        if all(v is None for v in meds.values()):
            continue
        cells = []
        for t in cols:
            if meds[t] is None:
                st = res.status(config, t, test)
                cells.append(st if st and st != "ok" else "–")
            else:
                cells.append(fmt(meds[t], unit))
        bp, bpt = best([(t, meds.get(t)) for t in PEERS if t in meds], better)
        pr = meds.get("prism")
        dr = meds.get("direct")
        arrow = "↑" if better == "high" else "↓"
        out.append("| %s %s | %s | %s | %s | %s | %s |" % (
            label, arrow, unit, " | ".join(cells),
            "%s (%s)" % (fmt(bp, unit), bpt) if bp is not None else "–",
            fmt_ratio(pr / bp) if pr is not None and bp else "–",
            fmt_ratio(pr / dr) if pr is not None and dr else "–"))
    out.append("")
    kernel_table(res, config, out)
    out.append("↑ higher is better, ↓ lower is better. A cell that is not a number is the "
               "target's status: *missing* (did not start or does not do it yet), *n/a* "
               "(the peer cannot do this test), *failed* (see the JSON lines).")
    out.append("")


def kernel_table(res, config, out):
    """Kernel memory per idle connection, apart: machine-wide readings that include the
    load tool's and the origin's sockets too."""
    rows = []
    for t in res.targets:
        cells = []
        for n in res.idle_ns:
            for prefix in ("slab_", "sock_"):
                v = res.median(config, t, metric_by_key(res, prefix + str(n)))
                cells.append(fmt(v))
        if any(c != "–" for c in cells):
            rows.append("| %s | %s |" % (t, " | ".join(cells)))
    if not rows:
        return
    out.append("Kernel memory per idle connection, reported apart (machine-wide, so it "
               "includes the client's and the origin's sockets: 2 sockets per connection "
               "direct, 4 through a proxy): growth of `SUnreclaim` in `/proc/meminfo` "
               "(the socket structures) and of TCP `mem` in `/proc/net/sockstat` (buffered "
               "bytes, batched per CPU by the kernel, so near 0 for idle sockets), in bytes.")
    out.append("")
    out.append("| target | " + " | ".join("slab N=%d | TCP mem N=%d" % (n, n) for n in res.idle_ns) + " |")
    out.append("|---|" + "---:|" * (2 * len(res.idle_ns)))
    out.extend(rows)
    out.append("")


def detail_tables(res, config, out):
    for m in res.metrics:
        key, test, label, unit, better, _ = m
        rows = []
        meds = {t: res.median(config, t, m) for t in res.targets}
        if all(v is None for v in meds.values()):
            continue
        bp, bpt = best([(t, meds.get(t)) for t in PEERS if t in meds], better)
        dr = meds.get("direct")
        for t in res.targets:
            vals = res.values(config, t, m)
            if not vals:
                continue
            med = statistics.median(vals)
            if len(vals) >= 4:
                q = statistics.quantiles(vals, n=4)
                iqr = "%s–%s" % (fmt(q[0], unit), fmt(q[2], unit))
            else:
                iqr = "–"
            rows.append("| %s | %s | %s–%s | %s | %d | %s | %s |" % (
                t, fmt(med, unit), fmt(min(vals), unit), fmt(max(vals), unit), iqr, len(vals),
                fmt_ratio(med / bp) if bp else "–", fmt_ratio(med / dr) if dr else "–"))
        out.append("**%s** (%s%s)" % (label, unit, {"high": ", higher is better",
                                                   "low": ", lower is better"}.get(better, "")))
        out.append("")
        out.append("| target | median | min–max | IQR | rounds | ÷ best peer | ÷ direct |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        out.extend(rows)
        out.append("")


def udp_ladder(res, config, out):
    rates = res.meta.get("params", {}).get("udp_rates", [])
    if not rates:
        return
    rows = []
    for t in res.targets:
        recs = res.ok.get((config, t, "udp"), [])
        if not recs:
            continue
        cells = []
        for rate in rates:
            losses, sent = [], []
            for r in recs:
                for s in r["data"]["steps"]:
                    if s["rate"] == rate and not s.get("refine"):
                        losses.append(s["loss_pct"])
                        sent.append(s["send_rate"])
            cells.append("%.1f%% (%s)" % (statistics.median(losses), fmt(statistics.median(sent)))
                         if losses else "–")
        rows.append("| %s | %s |" % (t, " | ".join(cells)))
    if not rows:
        return
    out.append("**UDP loss at each rate of the ladder** (median loss, and in brackets the median "
               "rate the load tool actually sent; a step is left out once two steps in a row lost over 50%)")
    out.append("")
    out.append("| target | " + " | ".join("{:,}/s".format(r) for r in rates) + " |")
    out.append("|---|" + "---:|" * len(rates))
    out.extend(rows)
    out.append("")


def udp_worst_loss(res, config, target):
    """(the highest of the per-step median losses, the highest loss of any single step in
    any round), in %, over <target>'s ladder steps, or None."""
    by_rate = defaultdict(list)
    for r in res.ok.get((config, target, "udp"), []):
        for s in r["data"]["steps"]:
            if not s.get("refine"):
                by_rate[s["rate"]].append(s["loss_pct"])
    if not by_rate:
        return None
    return (max(statistics.median(v) for v in by_rate.values()),
            max(max(v) for v in by_rate.values()))


def time_wait_starts(res, config=None):
    """The time_wait_start of every connection test (of <config>, or of all), for runs
    that cleared the harness's TIME_WAIT entries first (bench/run.sh flush_time_wait)."""
    return [r["data"]["time_wait_start"] for (c, _, test), rs in res.ok.items()
            if test == "connrate" and config in (None, c) for r in rs
            if "time_wait_start" in r["data"]]


def workload_units(d):
    """What the instruction and syscall workloads of one target moved: {"conns":
    connections, "bulk": GiB, "udp": datagrams echoed}, 0 where a workload did not run."""
    return {"conns": (d.get("connrate") or {}).get("conns") or 0,
            "bulk": ((d.get("iperf") or {}).get("bytes") or 0) / 2**30,
            "udp": sum(st.get("recv", 0) for st in (d.get("udpload") or {}).get("steps", []))}


def syscalls_per(d, run):
    """(all, epoll_wait, the rest) syscalls per connection ("conns"), per GiB ("bulk")
    or per echoed datagram ("udp") of one target, or None if that workload moved
    nothing."""
    n = workload_units(d)[run]
    if not n:
        return None
    total, ep = d[run + "_run"], d[run + "_epoll"]
    return total / n, ep / n, (total - ep) / n


def insn_table(res, out):
    if not res.insn:
        bad = [(k[1], v) for k, v in res.bad.items() if k[2] == "insn"]
        if bad:
            out.append("Instruction counts did not run: " +
                       "; ".join("%s: %s" % (t, v[0][1]) for t, v in bad))
            out.append("")
        return
    method = next(iter(res.insn.values()))["method"]
    out.append("Method: **%s**. %s" % (method, {
        "callgrind": "The CPU of this machine counts no instructions (`perf stat -e instructions` "
                     "says `<not supported>`), so each target runs three times under valgrind's "
                     "callgrind (1 worker): started and stopped (base), with %s connections of "
                     "64 B each way, and with one iperf3 stream of %s. Counts are **user-space "
                     "only** (the kernel's share of a copy or a splice is not in them); the base "
                     "run is subtracted." % (
                         next(iter(res.insn.values())).get("conns_asked"),
                         res.meta.get("params", {}).get("insn_bytes", "?").replace("M", " MiB").replace("G", " GiB")),
        "perf": "`perf stat -e instructions` on the proxy's processes during the workload "
                "(user and kernel).",
    }.get(method, "")))
    out.append("")
    out.append("| target | instructions per connection | instructions per GiB | ÷ best peer (conn) | ÷ best peer (GiB) |")
    out.append("|---|---:|---:|---:|---:|")
    per = {}
    for t in res.targets:
        d = res.insn.get(t)
        if not d:
            continue
        u = workload_units(d)
        pc = (d["conns_run"] - d["base"]) / u["conns"] if u["conns"] else None
        pg = (d["bulk_run"] - d["base"]) / u["bulk"] if u["bulk"] else None
        per[t] = (pc, pg)

    def usable(v):  # a difference the base run's own variation swallowed is no figure
        return v is not None and v > 0
    bc = best([(t, per[t][0]) for t in PEERS if t in per and usable(per[t][0])], "low")[0]
    bg = best([(t, per[t][1]) for t in PEERS if t in per and usable(per[t][1])], "low")[0]
    noise = False
    for t, (pc, pg) in per.items():
        cells = []
        for v, b in ((pc, bc), (pg, bg)):
            cells.append(fmt(v) if usable(v) or v is None else "below noise")
            noise = noise or (v is not None and not usable(v))
        out.append("| %s | %s | %s | %s | %s |" % (
            t, cells[0], cells[1],
            fmt_ratio(pc / bc) if usable(pc) and bc else "–",
            fmt_ratio(pg / bg) if usable(pg) and bg else "–"))
    out.append("")
    if noise:
        out.append("*below noise*: the workload's count minus the base run's came out at or under "
                   "zero, because a splicing proxy runs next to no user-space code per byte and "
                   "the base run's own variation (start-up, timers) is larger than that.")
        out.append("")
    if "prism" in per:
        out.append("prism's count includes its event log (two JSON records per connection, "
                   "formatted by the control thread) and its counters, which the peers, as "
                   "configured here, do not write.")
        out.append("")
    return per


def syscalls_table(res, out):
    """Syscalls per connection and per GiB, and the kernel's share of the proxy's CPU."""
    if not res.syscalls:
        bad = [(k[1], v) for k, v in res.bad.items() if k[2] == "syscalls"]
        out.append("Syscall counts did not run" + (": " + "; ".join(
            "%s: %s" % (t, v[0][1]) for t, v in bad) if bad else " (perf cannot count "
            "syscall tracepoints here, or SYSCALLS=off)."))
        out.append("")
        return
    udp_rates = sorted({st.get("rate") for d in res.syscalls.values()
                        for st in (d.get("udpload") or {}).get("steps", [])} - {None})
    udp_words = (", and, where it proxies UDP, an echo of 64 B datagrams at %s datagrams/s "
                 "(per echoed datagram: one in each way)" % "/".join("{:,}".format(r) for r in udp_rates)
                 if udp_rates else "")
    out.append("Each target starts afresh (1 worker, pinned to CPU 0) and runs the same two "
               "workloads as the instruction counts%s, while `perf stat` counts the kernel's "
               "`raw_syscalls:sys_enter` tracepoint on its processes: exact counts, at full "
               "speed. `epoll_wait` calls are also given apart, since a busy-polling target "
               "makes many of them while it waits. *Kernel share* is the proxy's system time "
               "over its user plus system time during the workload (`/proc/PID/stat`): the "
               "part of its CPU that is the kernel's network work, which no user-space change "
               "can shorten except by making fewer or cheaper syscalls." % udp_words)
    out.append("")
    out.append("| target | syscalls per connection | epoll_wait | the rest | kernel share (conns) "
               "| syscalls per GiB | epoll_wait | the rest | kernel share (bulk) "
               "| syscalls per UDP datagram | epoll_wait | the rest | kernel share (UDP) |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t in res.targets:
        d = res.syscalls.get(t)
        if not d:
            continue
        cells = []
        for run in ("conns", "bulk", "udp"):
            per = syscalls_per(d, run)
            cells += [fmt(v) for v in per] if per else ["–"] * 3
            cells.append(kernel_share(d, run) or "–")
        out.append("| %s | %s |" % (t, " | ".join(cells)))
    out.append("")


def kernel_share(d, run):
    u, k = d.get(run + "_user_s"), d.get(run + "_sys_s")
    if u is None or k is None or u + k <= 0:
        return None
    return "%.0f%%" % (100.0 * k / (u + k))


def check(out, name, value, ref_label, ref, factor, better, rounds="–"):
    """One line of the targets table: <value> must be >= (or <=) <factor> x <ref>;
    <rounds> says in how many rounds it was."""
    if value is None or ref is None:
        out.append("| %s | %s | %s | – | **unknown** (%s) | %s |" % (
            name, fmt(value), ref_label if ref is not None else "–",
            "no prism figure" if value is None else "no reference figure", rounds))
        return
    need = ref * factor
    if better == "high":
        met = value >= need
        by = (value / need - 1) * 100 if need else None
    else:
        met = value <= need
        by = (need / value - 1) * 100 if value else None
    word = "met" if met else "**not met**"
    if by is None:
        how = "reference is 0"
    else:
        digits = 1 if abs(by) < 1 else 0
        how = ("%+.*f%% margin" % (digits, by)) if met else ("%.*f%% short" % (digits, -by))
    out.append("| %s | %s | %s | %s | %s (%s) | %s |" % (
        name, fmt(value), ref_label, fmt(need), word, how, rounds))


def rounds_met_count(res, cfg, key, ref_t, factor, better):
    """(met, n): in how many of the n rounds both ran, prism's figure met <factor> x
    <ref_t>'s of the same round; None if there is no such round."""
    if ref_t is None:
        return None
    m = metric_by_key(res, key)
    mine = {r["round"]: v for r, v in res.each(cfg, "prism", m)}
    theirs = {r["round"]: v for r, v in res.each(cfg, ref_t, m)}
    both = sorted(set(mine) & set(theirs))
    if not both:
        return None
    met = sum(1 for n in both if (mine[n] >= factor * theirs[n] if better == "high"
                                  else mine[n] <= factor * theirs[n]))
    return met, len(both)


def retransmits_8(res, cfg):
    """{target: [segments the iperf3 client sent again, per round]} of the 8-stream tests
    that counted them."""
    m = metric_by_key(res, "bulk8_gbps")
    out = {}
    for t in ["prism"] + PEERS:
        counts = [r["data"].get("retransmits") for r, _ in res.each(cfg, t, m)]
        counts = [k for k in counts if k is not None]
        if counts:
            out[t] = counts
    return out


def targets_section(res, out):
    cfg = "1w"
    if cfg not in res.configs:
        out.append("The 1-worker configuration was not run: no target can be checked.")
        out.append("")
        return

    def med(t, key):
        return res.median(cfg, t, metric_by_key(res, key))

    def best_of(ts, key, better):
        return best_median(med, ts, key, better)

    def rounds_met(key, ref_t, factor, better):
        met = rounds_met_count(res, cfg, key, ref_t, factor, better)
        return "%d of %d" % met if met else "–"

    out.append("| target | prism | reference | required | verdict | rounds met |")
    out.append("|---|---:|---|---:|---|---:|")
    for test, label in (("bulk1", "1 stream"), ("bulk8", "8 streams")):
        hv, ht = best_of(HAPROXY, test + "_gbps", "high")
        check(out, "TCP bulk %s: Gbit/s ≥ HAProxy's best" % label, med("prism", test + "_gbps"),
              "%s Gbit/s (%s)" % (fmt(hv), ht), hv, 1.0, "high",
              rounds_met(test + "_gbps", ht, 1.0, "high"))
        hc = med(ht, test + "_core") if ht else None
        check(out, "TCP bulk %s: Gbit/s per busy core ≥ 1.25 × HAProxy's best" % label,
              med("prism", test + "_core"), "%s (%s)" % (fmt(hc), ht), hc, 1.25, "high",
              rounds_met(test + "_core", ht, 1.25, "high"))
    cv, ct = best_of(HAPROXY + ["nginx"], "conn_core", "high")
    check(out, "New connections per busy core ≥ 1.3 × best of HAProxy and nginx",
          med("prism", "conn_core"), "%s conn/s per core (%s)" % (fmt(cv), ct), cv, 1.3, "high",
          rounds_met("conn_core", ct, 1.3, "high"))
    av, at = best_of(PEERS, "conn_rate", "high")
    check(out, "New connections/s ≥ best peer", med("prism", "conn_rate"),
          "%s conn/s (%s)" % (fmt(av), at), av, 1.0, "high", rounds_met("conn_rate", at, 1.0, "high"))
    for key, label in (("rtt_p50", "p50"), ("rtt_p99", "p99")):
        pv, pt = best_of(PEERS, key, "low")
        check(out, "Ping-pong %s ≤ best peer's" % label, med("prism", key),
              "%s us (%s)" % (fmt(pv), pt), pv, 1.0, "low", rounds_met(key, pt, 1.0, "low"))
    for n in res.idle_ns:
        hv, ht = best_of(HAPROXY, "pss_%d" % n, "low")
        check(out, "Memory per idle connection (PSS, N=%d) ≤ 0.6 × HAProxy's" % n,
              med("prism", "pss_%d" % n), "%s B (%s)" % (fmt(hv), ht), hv, 0.6, "low",
              rounds_met("pss_%d" % n, ht, 0.6, "low"))
    dv = med("direct", "udp_rate")
    check(out, "UDP sustained rate ≥ 0.9 × direct", med("prism", "udp_rate"),
          "%s datagrams/s (direct)" % fmt(dv), dv, 0.9, "high",
          rounds_met("udp_rate", "direct", 0.9, "high"))
    nv = med("nginx", "udp_rate")
    check(out, "UDP sustained rate ≥ 2.5 × nginx stream", med("prism", "udp_rate"),
          "%s datagrams/s (nginx)" % fmt(nv), nv, 2.5, "high",
          rounds_met("udp_rate", "nginx", 2.5, "high"))
    out.append("")
    out.append("*Rounds met* compares prism with the reference target of the same round; "
               "where the medians are close it says whether the verdict is more than the "
               "rounds' noise. "
               "Margins are against the required value. Where a target is not met, the issue "
               "asks where the time goes: see the per-core figures (CPU the proxy burns for "
               "the same work), and the instruction counts, syscall counts and kernel share "
               "of the proxy's CPU further down.")
    out.append("")
    where_the_time_goes(res, cfg, med, out)


def ab_section(res, out):
    """prism-b against prism: per metric, both medians, their ratio, and in how many
    rounds (paired by round: both ran in it) prism-b did better."""
    a = res.meta.get("prism") or {}
    b = res.meta.get("prism_b") or {}

    def describe(v):
        words = [v.get("bin") or "?"]
        if v.get("busy_poll_us") is not None:
            words.append("busy_poll_us %d" % v["busy_poll_us"])
        return ", ".join(words)
    out.append("prism-b%s is %s; prism is %s. Both run in the same rounds, in the rotated "
               "order, so the machine's noise hits them alike; *B better* counts the rounds in "
               "which prism-b's figure beat prism's (ties count for neither)." % (
                   " (%s)" % b["label"] if b.get("label") else "", describe(b), describe(a)))
    out.append("")
    for cfg in res.configs:
        rows = []
        for m in res.metrics:
            _, _, label, unit, better, _ = m
            if not is_headline(m):
                continue
            ma, mb = res.median(cfg, "prism", m), res.median(cfg, "prism-b", m)
            if ma is None or mb is None:
                continue
            ra = {r["round"]: v for r, v in res.each(cfg, "prism", m)}
            rb = {r["round"]: v for r, v in res.each(cfg, "prism-b", m)}
            both = sorted(set(ra) & set(rb))
            wins = sum(1 for r in both if (rb[r] > ra[r] if better == "high" else rb[r] < ra[r]))
            rows.append("| %s %s | %s | %s | %s | %s | %d of %d |" % (
                label, "↑" if better == "high" else "↓", unit, fmt(ma, unit), fmt(mb, unit),
                fmt_ratio(mb / ma) if ma else "–", wins, len(both)))
        if not rows:
            continue
        out.append("**%s**" % CONFIG_TITLES.get(cfg, cfg))
        out.append("")
        out.append("| metric | unit | prism | prism-b | prism-b ÷ prism | B better |")
        out.append("|---|---|---:|---:|---:|---:|")
        out.extend(rows)
        out.append("")


def congestion_control_sentence(cc):
    """The bulk paragraph's first sentences: the machine's default congestion control,
    and where a pacing one (BBR) is the default, what prism does for loopback origins.
    "" when the run did not record it."""
    if not cc:
        return ""
    text = ("the machine's default congestion control is %s (net.ipv4.tcp_congestion_control), "
            "which the iperf3 client and every proxy beside prism use. " % cc)
    if cc.startswith("bbr"):
        text += ("BBR paces every send with kernel timers to its model of the path's bandwidth; "
                 "prism gives its sockets to a loopback origin reno instead (src/net/sockpool.h), "
                 "since on loopback there is no path to model and nothing is lost. So prism's leg "
                 "to the origin is not paced, while the iperf3 client's leg into it, and the one "
                 "leg without a proxy (direct), are: that is how prism can move more than direct. "
                 "In an A/B of 7 rounds (2026-12-07, bulk tests, prism-b), reno gave 1.84 times "
                 "the throughput on 1 stream and 1.66 times on 8 (better in 7 of 7 rounds each), "
                 "at 1.85 and 1.32 times the Gbit/s per busy core; the A/Bs quoted below from "
                 "before it were measured with prism's origin sockets paced. ")
    return text


def where_the_time_goes(res, cfg, med, out):
    """Facts from this run that say what bounds each headline figure."""
    def spread(t, key):
        v = res.values(cfg, t, metric_by_key(res, key))
        return "%s–%s" % (fmt(min(v)), fmt(max(v))) if v else "–"

    def peers_list(f):
        return ", ".join("%s %s" % (t, f(t)) for t in PEERS if f(t) is not None)

    def peers_us(key):  # the peers' medians of <key>, in µs
        return peers_list(lambda t: fmt(med(t, key)) + " µs" if med(t, key) is not None else None)

    def pct(v):
        return "%.0f%%" % (100 * v) if v is not None else None

    lines = []
    sc = res.syscalls

    def share(t, run="conns"):  # the kernel's share of the proxy's CPU in a workload
        return kernel_share(sc[t], run) if t in sc else None

    def rest(t, run):  # syscalls per unit besides epoll_wait
        per = syscalls_per(sc[t], run) if t in sc else None
        return fmt(per[2]) if per else None

    def segs(t):  # TCP segments per connection, all endpoints, in the syscall workload
        d = sc.get(t) or {}
        n = workload_units(d)["conns"]
        return fmt(d["conns_segs"] / n) if n and d.get("conns_segs") is not None else None

    def conn_polling():  # why kernel savings do not lift prism's connections per core
        def busy(t):
            return fmt(med(t, "conn_busy"), "cores") if med(t, "conn_busy") is not None else None
        if busy("prism") is None:
            return ""
        return (
            " Nor does kernel work taken out of prism's calls show here: the load side's CPU "
            "bounds prism's rate (below), and while prism's worker waits for it, it polls for "
            "its next event (busy_poll_us) instead of sleeping, so what it saves comes back as "
            "polling, not as idle time or more connections: prism's core was busy %s of the "
            "time (%s). In an A/B of 7 rounds (2026-12-07, prism-b, haproxy beside), "
            "busy_poll_us 0 gave 1.04 times the connections per busy core (better in 5 of 7 "
            "rounds) for 0.96 times the connections/s and 1.19 times the exchange's p99 (worse "
            "in 6 of 7 each): 28,950 connections per busy core against haproxy's 23,895, 1.21 "
            "times, where 1.3 is asked (src/core/loop.c)." % (busy("prism"), peers_list(busy))
            + conn_preemption())

    def conn_preemption():  # what the load side pays for being woken from the proxy's core
        return (
            " Part of what the load side pays through any proxy is the scheduler's: a wakeup "
            "from the proxy's core that preempts the load tool or the origin running on CPU 1 "
            "is an interrupt sent to CPU 1, and on this kind of virtual machine those are dear. "
            "In 3 s runs by hand (2026-12-07) CPU 1 took 4096 and 4387 reschedule interrupts "
            "while prism made 25,894 and 26,722 connections/s; with the load tools and origins "
            "under SCHED_BATCH, whose wakeups do not preempt, it took 36 and 32, and prism made "
            "28,062 and 28,332. The harness does not use that policy: in a run of 3 rounds with "
            "it and one of 3 without (same hour, every 1-worker target), it gave prism 1.05 "
            "times the connections/s and direct 1.11 times, but haproxy 0.73 times, "
            "haproxy-splice 0.82, haproxy-busy 0.90 and nginx 1.00, and the peers that sleep "
            "1.22 to 1.32 times the ping-pong p50 (bench/run.sh with `chrt -b 0` before "
            "each load tool and origin): a load side that favours one kind of proxy.")

    def conn_ceiling():  # the ephemeral-port ceiling, and which peers it held
        tw = time_wait_starts(res, cfg)
        if not tw:
            return ""
        ports = (res.meta.get("machine") or {}).get("ip_local_port_range", "").split()
        width = int(ports[1]) - int(ports[0]) + 1 if len(ports) == 2 else None
        src = any(c["name"].startswith("haproxy") and "source 127.0.0.99:" in c["text"]
                  for c in res.configs_text)
        held = [t for t in (["nginx"] if src else HAPROXY + ["nginx"])
                if med(t, "conn_rate") is not None]
        text = (
            " Each connection test starts with none of the harness's TIME_WAIT entries (at "
            "most {:,} left on the machine at the start of any): the kernel's table of them "
            "is shared, and once it is full (net.ipv4.tcp_max_tw_buckets) a closed "
            "connection leaves no entry, so in runs that did not clear them the peers made "
            "up to 22,200 connections/s right after the test of a target that had filled "
            "it, and 14,200 otherwise (2026-12-07). A proxy that connects to its origin "
            "from the ephemeral range ({}) may take a port whose TIME_WAIT entry is still "
            "there only once the entry is a second old (net.ipv4.tcp_tw_reuse_delay), and "
            "this workload keeps the range full of entries, so each connect() searches it: "
            "in a cpu-clock profile of haproxy-splice's core in this workload without a "
            "source range (2026-12-07) the search (__inet_hash_connect, with the TIME_WAIT "
            "checks of __inet_check_established) took 28% of its CPU.".format(
                max(tw), "{:,} ports".format(width) if width else "its width was not recorded"))
        if held:
            text += " Between rounds, %s." % ", ".join(
                ("%s made %s connections/s" if i == 0 else "%s %s") % (t, spread(t, "conn_rate"))
                for i, t in enumerate(held))
        if src:
            text += (
                " HAProxy is given source ports of its own for its origin sockets (`source "
                "127.0.0.99:1025-32767` on the echo server's line), so it binds each of them "
                "itself and takes over its own entries, as prism does; without them "
                "haproxy-splice made 14,181 to 14,229 connections/s in three 3 s runs by hand "
                "(2026-12-07, entries cleared before each). nginx stream has no such range: "
                "it can only spread its origin sockets over several source addresses "
                "(proxy_bind with a variable).")
        else:
            text += (
                " The ceiling is the configuration's, not HAProxy's: given a source port "
                "range for its origin sockets (`source 127.0.0.1:1025-32767` on its server "
                "line), HAProxy binds each of them itself and takes over its own TIME_WAIT "
                "entries as prism does, and in three 3 s runs by hand (2026-12-07, entries "
                "cleared before each) haproxy-splice made 17,342 to 21,697 connections/s, "
                "17,879 to 22,523 per busy core (median 21,696), against 14,181 to 14,229 "
                "connections/s without it; 1.3 times that median is 28,200, %s prism's "
                "figure here." % (
                    "above" if (med("prism", "conn_core") or 0) < 28200 else "below"))
        return text

    def load_cpu(key, what, before="", after=""):  # how busy the load CPU was; "" if not measured
        if med("prism", key) is None:
            return ""
        return before + (
            "CPU 1 (the load tools and origins) was busy a median %s of the time during "
            "prism's %s (direct %s; %s)." % (
                pct(med("prism", key)), what, pct(med("direct", key)),
                peers_list(lambda t: pct(med(t, key))))) + after

    conn_ref, _ = best_median(med, HAPROXY + ["nginx"], "conn_core", "high")
    conn_short = (conn_ref is not None and med("prism", "conn_core") is not None
                  and med("prism", "conn_core") < 1.3 * conn_ref)
    if sc.get("prism"):
        lines.append(
            "**New connections** are the kernel's work for every proxy: during the connection "
            "workload the kernel took %s of prism's CPU (%s).%s Syscalls per connection "
            "besides epoll_wait: prism %s (%s). On loopback the proxy's connect() and close() run the origin's and "
            "the client's side of the handshake and of the close in the proxy's own softirq, "
            "so most of that kernel time is the peers' TCP work, the same for every proxy. "
            "prism's origin socket gets its keepalive and TCP_USER_TIMEOUT options only once "
            "a connection has lived a second, so these short ones do without them, and an "
            "origin socket that closed cleanly serves the next connection (one "
            "connect(AF_UNSPEC) and two getsockopt checks instead of socket(), setsockopt, "
            "epoll_ctl and close()). A socket for a loopback origin also keeps its local port "
            "(bound twice in its life), so each later connect() takes over its own TIME_WAIT "
            "entry instead of searching an ephemeral range that this workload fills with "
            "TIME_WAIT entries: in an earlier cpu-clock profile of this workload that search was 22%% of prism's CPU. Remote "
            "origins still pay for the search.%s" % (
                share("prism") or "–", peers_list(share),
                " prism's own code is the rest, so even making it free could not lift "
                "connections per core by the 1.3× asked over peers that are as kernel-bound."
                + conn_polling() if conn_short else "",
                rest("prism", "conns"), peers_list(lambda t: rest(t, "conns")),
                conn_ceiling()))
        if med("prism", "conn_p50") is not None and med("direct", "conn_p50") is not None:
            lines[-1] += (
                " The connect time is the load tool's to see, not the proxy's to give: the "
                "kernel answers the SYN in the client's own softirq, and the tool notices "
                "on its next loop. prism's p50 of %s µs is of the order of direct's %s µs, "
                "not of the peers' (%s), "
                "since at prism's rate, as without a proxy, the load side's CPU is the one "
                "that is saturated: %s The whole exchange's p99 is what a "
                "client waits for: prism %s µs (%s)." % (
                    fmt(med("prism", "conn_p50")), fmt(med("direct", "conn_p50")),
                    peers_us("conn_p50"), load_cpu("conn_load", "connection test") or (
                        "this run did not measure it; in a check by hand (2026-12-04, AMD "
                        "EPYC) CPU 1 was busy a median 100% of each 250 ms sample during "
                        "prism's connection test."),
                    fmt(med("prism", "txn_p99")), peers_us("txn_p99")))
        if segs("prism"):
            lines[-1] += (
                " TCP segments per connection, counted for all endpoints (Tcp OutSegs in "
                "/proc/net/snmp, same workload): prism %s (%s). Without a proxy the "
                "exchange takes 10 (SYN, SYN-ACK, ACK, request, its ACK, reply, its ACK, "
                "FIN, FIN, ACK), so both legs carry the same packets through every proxy, "
                "and none is left for a proxy to save without delaying an ACK "
                "(saving the ACK of the origin's SYN-ACK, as HAProxy's tcp-smart-connect "
                "does, waits up to 200 ms for data to carry it when the client has sent "
                "none yet). Delaying the ACK of the client's request instead, so that it "
                "rides on the reply (TCP_QUICKACK 0 on the listener, which accepted sockets "
                "inherit: HAProxy's tcp-smart-accept, on by default in its HTTP mode only), "
                "took prism to 19.0 segments per connection by hand and, in two A/Bs of 11 "
                "rounds (2026-12-08, prism-b), gave 1.01 and 1.02 times the connections/s "
                "(better in 8 of 11 rounds each) and 1.01 times the connections per busy "
                "core (8 and 7 of 11), 1.18 times haproxy's in the run that had it beside, "
                "where 1.3 is asked; in 7 rounds a few minutes before them, while the machine "
                "was slower (prism's median 23,401 connections/s, against 27,440 and 26,015 "
                "in those two), 0.91 times (1 of 7). "
                "The ACK it saves was CPU 1's work, sent in the softirq of the client's "
                "send of its request. Left out: a "
                "client with Nagle's algorithm on that writes its first request in two "
                "parts would wait up to 40 ms for the delayed ACK before the second part leaves, "
                "and a proxy of bytes cannot tell when a request is complete." % (
                    segs("prism"), peers_list(segs)))
        cc = congestion_control_sentence(res.meta.get("machine", {}).get("tcp_congestion_control"))
        lines.append("**TCP bulk**: " + cc + ("Proxy" if cc else "proxy") + (
            " cores busy on 1 stream: prism %s (%s). Where prism's core is "
            "not saturated its CPU is not the limit: the load side (iperf3's client and server "
            "share CPU 1) and the wakeups between the two CPUs are, which a proxy that spins "
            "instead of sleeping (haproxy-busy) avoids at the price of a full core; prism "
            "polls for 20 µs after each run of a bulk stream before it sleeps. That spin "
            "costs CPU per byte and buys throughput: in an A/B of 5 "
            "rounds (2026-12-04, AMD EPYC, haproxy-splice beside), prism that slept at once moved 34.1 "
            "Gbit/s per busy core on 1 stream against 28.1 with the spin, 1.09 and 0.93 "
            "times haproxy-splice's (1.25 is asked), but 0.96 of haproxy-splice's "
            "throughput against 1.07 (src/core/loop.c). On an Intel Xeon of the same machine "
            "kind (2026-12-07, 9 rounds, the two builds side by side as prism and prism-b), "
            "the spin gave 22.9 against 20.3 Gbit/s on 1 stream (better in 6 of 9 rounds) and "
            "23.1 against 19.8 on 8 (6 of 9), at 38.8 against 57.9 Gbit/s per busy core on 1 "
            "stream. The rest is the kernel's work per "
            "byte: moving pages into and out of a pipe, and the receivers' TCP work that "
            "runs in prism's softirq, the same for every splicing proxy however few "
            "syscalls it makes. %s A "
            "streaming direction stays in splice after it drained its source, so a bulk "
            "stream is not copied through user space (prism_tcp_copied_bytes_total). Syscalls "
            "per GiB besides epoll_wait: prism %s (%s)." % (
                fmt(med("prism", "bulk1_busy"), "cores"),
                peers_list(lambda t: fmt(med(t, "bulk1_busy"), "cores") if med(t, "bulk1_busy") is not None else None),
                load_cpu("bulk1_load", "1-stream test", "On 1 stream ", " ")
                + load_cpu("bulk8_load", "8-stream test", "On 8 streams ", " ")
                + "Splicing costs the load side more per byte than copying does: in "
                "cpu-clock profiles of CPU 1 with 8 streams (2026-12-07, 11.4 to 12.2 "
                "Gbit/s each), iperf3's copies took 47%% of CPU 1 through prism (31%% into the "
                "server's buffers, 16%% out of the client's) and 44%% through haproxy-busy, "
                "against 17%% through haproxy without splice, where CPU 1 was idle a third of "
                "the time. That fits how splice moves bytes: a spliced byte reaches the "
                "server in the pages the client wrote it into, long before, and the client "
                "cannot reuse those pages while they are in flight; a copying proxy hands over "
                "bytes it has just written and frees the client's pages at once. The same holds for every "
                "splicing proxy, and copying would cost the proxy's own core two copies per "
                "byte instead (1 stream, Gbit/s per busy core: haproxy %s, nginx %s, prism "
                "%s)." % (fmt(med("haproxy", "bulk1_core")), fmt(med("nginx", "bulk1_core")),
                          fmt(med("prism", "bulk1_core"))),
                rest("prism", "bulk"), peers_list(lambda t: rest(t, "bulk")))))
    retrans = retransmits_8(res, cfg)
    if sc.get("prism") and retrans.get("prism"):  # after the bulk paragraph
        def few(t):
            n = sum(1 for k in retrans[t] if k < 50)
            return "%d–%d%s" % (min(retrans[t]), max(retrans[t]),
                                ", under 50 in %d of %d rounds" % (n, len(retrans[t])) if n else "")
        lines[-1] += (
            " Segments the iperf3 client sent again on 8 streams (its count: the leg into the "
            "proxy), between rounds: prism %s (%s). On loopback nothing is lost: counted with "
            "nstat by hand (2026-12-07, prism's origin sockets still paced), nearly all of "
            "prism's were tail-loss probes that the receiver answered with a DSACK, segments "
            "sent again after the sender had waited longer than its probe timeout (about two "
            "smoothed round trips) for an ACK. While prism's origin sockets still paced (BBR, "
            "before its loopback origins got reno), across the bench runs of 2026-12-07 on this "
            "host (17 results files), prism's 8-stream rounds fell into three groups: 9 with "
            "under 50 at 15.5–16.8 Gbit/s (prism's core busy 0.62–0.67 of the time), 91 with 50 "
            "or more at 10.0–14.3 (median 11.6, busy a median 0.44) and 8 with under 50 at "
            "8.9–10.6 (busy 0.30–0.35); haproxy-splice moved a median 13.0 in its 32 rounds with "
            "under 50 and 11.9 in its 38 with them. Turning the probes off machine-wide "
            "(net.ipv4.tcp_early_retrans=0, by hand, 3 runs of 4 s each) did not lift prism "
            "(11.25 to 11.97 Gbit/s against 10.98 to 11.73). In the middle group prism's origin "
            "sockets held 17.6 to 29.7 MB not yet acknowledged (the Send-Q of `ss` summed over "
            "the 8 streams, by hand), and bounding that with TCP_NOTSENT_LOWAT (bench A/B, 7 "
            "rounds) gave 1.37 times the 8-stream throughput at 128 KiB, but 0.94 times on 1 "
            "stream and 0.69 times its Gbit/s per busy core, the worker being woken for each "
            "refill "
            "(src/proxy/tunnel.c). Not pacing the origin sockets did more than either, at no "
            "cost on 1 stream (the A/B at the start of this paragraph)." % (few("prism"),
                        ", ".join("%s %s" % (t, few(t)) for t in PEERS if retrans.get(t))))
    ping = ("**Ping-pong** p99 between rounds: prism %s µs, %s." % (
        spread("prism", "rtt_p99"),
        ", ".join("%s %s µs" % (t, spread(t, "rtt_p99")) for t in PEERS
                  if res.values(cfg, t, metric_by_key(res, "rtt_p99")))))
    p99_ref = best_median(med, PEERS, "rtt_p99", "low")[1]
    p99_met = rounds_met_count(res, cfg, "rtt_p99", p99_ref, 1.0, "low")
    if p99_met and 0 < p99_met[0] < p99_met[1]:
        met, n = p99_met
        ping += (" prism's p99 was at or below %s's in %d of %d rounds and above it in the "
                 "others%s" % (p99_ref, met, n, (
                     ": the difference between their medians is within the noise between "
                     "rounds." if n <= 3 * met <= 2 * n else ".")))
    if med("prism", "rtt_p50") is not None and med("direct", "rtt_p50") is not None:
        ping += (
            " The median round trip was %s µs direct, %s µs through prism (%s). A proxy "
            "that sleeps between messages is woken twice per round trip; prism polls for a "
            "while before it sleeps (busy_poll_us, adaptive up to 500 µs by default), as "
            "haproxy-busy spins, so neither pays those wakeups. What is left is the proxy's "
            "two relays and the two wakeups it causes on CPU 1, of the origin and of the "
            "client, sent from another core; without a proxy the client and the origin "
            "share CPU 1 and wake each other there, with no call between cores. On this "
            "machine those two wakeups are half the round trip: CPU 1 is idle between "
            "messages and halts, and a halted virtual CPU is woken from another core by an "
            "interrupt through the hypervisor. Measured by hand (2026-12-07, 30,000 round "
            "trips a run) while a process held a CPU latency request of 0 µs "
            "(/dev/cpu_dma_latency), which keeps every idle CPU of the machine polling "
            "instead of halting, prism's p50 was 18.1 and 20.6 µs against 39.4 and 40.4 "
            "without it, and haproxy-busy's 21.6 and 20.5 µs against 40.0 and 54.7. Both "
            "gain alike, so that cost is the machine's, not a proxy's, and prism does not "
            "make the request: it would keep the load side's CPU polling too, and every "
            "other idle CPU of the machine." % (
                fmt(med("direct", "rtt_p50")), fmt(med("prism", "rtt_p50")),
                peers_list(lambda t: fmt(med(t, "rtt_p50")) + " µs"
                           if med(t, "rtt_p50") is not None else None)))
        ping += load_cpu("rtt_load", "ping-pong test", " ")
    lines.append(ping)
    if med("prism", "udp_rate") is not None:
        udp_sc = ""
        if rest("prism", "udp"):
            udp_sc = (" The kernel took %s of prism's CPU while it echoed (%s), and prism made "
                      "%s syscalls per echoed datagram besides epoll_wait (%s): its datagrams "
                      "go in batches (recvmmsg, sendmmsg), a run of one flow's datagrams of "
                      "one size as one GSO message, so what is left is the kernel's work per "
                      "datagram, two receives and two sends, each send delivering into the "
                      "receiver's socket on prism's core. The load side "
                      "does the same work per datagram on CPU 1, so on loopback a proxy can "
                      "at best come close to direct." % (
                          share("prism", "udp") or "–", peers_list(lambda t: share(t, "udp")),
                          rest("prism", "udp"), peers_list(lambda t: rest(t, "udp"))))
        udp_bound = ""
        worst = udp_worst_loss(res, cfg, "prism")
        if worst is not None and worst[0] < 1.0:
            udp_bound = (
                " prism's median loss was under 1%% at every step of the ladder (at most "
                "%.2f%%; the worst step of any round lost %.2f%%): where its sustained rate "
                "is below the top of the ladder, that is because the load tool could not "
                "send faster, its CPU being full, not because prism dropped anything. Through a proxy the load side does "
                "more per datagram than without one: in a cpu-clock profile of CPU 1 at "
                "240,000 datagrams/s (2026-12-07), CPU 1 was busy all the time both ways, and "
                "through prism 7.4%% of its samples went to freeing, at its next softirq, the "
                "socket buffers it had allocated and prism's core had consumed "
                "(skb_defer_free_flush: the kernel frees a buffer on the CPU that allocated "
                "it), against 0.4%% without a proxy, and more went to reading cache lines "
                "the other core wrote (udp_recvmsg 4.2%% against 1.3%%, spin lock hand-offs "
                "3.8%% against 1.6%%). No proxy on another core can spare the load side that "
                "work." % worst)
        udp_bound += (
            " prism's sockets take coalesced runs (UDP_GRO); this ladder's load tool sends "
            "datagram by datagram, so nothing here arrives coalesced. With the load tool "
            "sending each batch as one GSO send (`UDP_GSO=1`; 2026-12-07, 5 rounds, this "
            "build against one without UDP_GRO as prism-b) the sustained rate was the same, "
            "248,991 against 242,978 datagrams/s, both bound by the load side, and prism "
            "echoed 162,491 datagrams per CPU-second against 134,202 (better in 4 of 5 "
            "rounds).")
        lines.append(
            "**UDP**: the load tool and the echo origin share CPU 1; direct reached %s "
            "datagrams/s (between rounds %s), prism %s (%s), nginx %s (%s).%s%s" % (
                fmt(med("direct", "udp_rate")), spread("direct", "udp_rate"),
                fmt(med("prism", "udp_rate")), spread("prism", "udp_rate"),
                fmt(med("nginx", "udp_rate")), spread("nginx", "udp_rate"), udp_bound, udp_sc))
    out.append("Where the time goes, in this run:")
    out.append("")
    for line in lines:
        out.append("- " + line)
    out.append("")


def write(res, path_out, results_path):
    m = res.meta
    mach = m.get("machine", {})
    out = []
    out.append("# Benchmarks")
    out.append("")
    out.append("prism side by side with HAProxy, nginx stream and socat on one machine, in one "
               "run, with interleaved rounds (issue #5). Generated by `bench/report.py` from "
               "`%s`; do not edit by hand." % os.path.relpath(results_path))
    out.append("")
    if m.get("quick"):
        out.append("> **QUICK smoke run** (`QUICK=1`): one round per configuration and short "
                   "tests. It proves the harness works; its numbers are not for comparison. "
                   "Run `make bench` for the real table.")
        out.append("")
    busy = mach.get("cpu_busy_start")
    load = mach.get("loadavg_start", "").split()[:1]
    if busy is not None and busy > 0.1:
        start = ("Other work was running when the run started: %.0f%% of the machine's CPU "
                 "time was busy in the second before it." % (100 * busy))
    elif busy is None and load and float(load[0]) > 0.5:  # results from before cpu_busy_start
        start = ("The load average was %s when the run started, so other work may have been "
                 "running." % mach.get("loadavg_start"))
    else:
        start = ""
    if start:
        out.append("> %s Absolute figures are noisy; interleaved rounds spread that noise over "
                   "every target, and the ratios are the figures to read." % start)
        out.append("")
    out.append("## How to reproduce")
    out.append("")
    out.append("```sh")
    out.append("make bench                                     # full run (about 35 minutes)")
    out.append("QUICK=1 make bench                             # smoke run (about 2 minutes)")
    out.append("ROUNDS=9 ROUNDS_2W=3 TESTS=connrate,pingpong TARGETS=prism,haproxy,nginx CONFIGS=1w bench/run.sh")
    out.append("/usr/bin/python3 bench/report.py build/bench/results-<ts>.jsonl docs/BENCHMARKS.md")
    out.append("```")
    out.append("")
    p = m.get("params", {})
    udp_extra = ""
    if p.get("udp_refine_steps"):
        udp_extra += (", then %d more steps that bisect between the highest of those rates with "
                      "under 1%% loss and the next one, for the sustained rate" % p["udp_refine_steps"])
    if p.get("udp_gso"):
        udp_extra += ("; **the load tool sent each batch as one GSO send and took replies "
                      "coalesced** (`UDP_GSO=1`, `udpload -G`), as QUIC and WireGuard peers do")
    if p.get("udp_late_ms"):
        udp_extra += ("; a reply that comes back more than %d ms after its datagram was sent "
                      "counts as lost, so a deep socket buffer cannot pass a rate the path does not "
                      "keep up with" % p["udp_late_ms"])
    out.append("Each round starts every target afresh, in an order rotated by one each round, "
               "and runs on it, in order: memory per idle connection (`bench/idleconns.c`: "
               "%s connections through the proxy, each echoing one byte, held while the proxy's "
               "PSS/RSS from `/proc/PID/smaps_rollup` are read), ping-pong (`bench/pingpong.c`: "
               "%s round trips of 64 B on one connection), TCP bulk with 1 and 8 streams "
               "(iperf3, %s s), new connections (`bench/connrate.c`: connect, 64 B request, "
               "64 B reply, close, 64 in flight, %s s%s) and UDP echo (`bench/udpload.c`: 64 B "
               "datagrams from %s source ports at %s datagrams/s, %s ms a step%s). The origins are "
               "`bench/echo_origin.c` (epoll echo, TCP and UDP) and `iperf3 -s`. Before each test "
               "the harness waits (at most 5 s) until the proxy is idle: no CPU used over 100 ms "
               "(for a target that spins by configuration, as haproxy-busy does: no more sockets "
               "open than when it had started), so the tail of one test does not run into the next. The proxy's CPU "
               "time (utime+stime of its processes and reaped children, from `/proc/PID/stat`) "
               "is read around each test; *per busy proxy core* divides the work done by it. "
               "With 1 worker, the busy share of the load CPU (CPU 1: the wall time it was "
               "not idle, from the idle column of `/proc/stat`, which the kernel measures "
               "exactly where its busy columns are samples at the tick) is read around the "
               "ping-pong, bulk and connection tests too: a load side that is busy all the "
               "time is what bounds the figure, not the proxy. "
               "On loopback the kernel runs much of a TCP receive in the sender's context, so "
               "the CPU charged to a proxy is its own syscalls and what its sends deliver; that "
               "rule is the same for every target, and splicing proxies gain the most from it." % (
                   " and ".join(map(str, p.get("idle_n", []))), p.get("pingpong_round_trips"),
                   fmt(p.get("bulk_seconds")), fmt(p.get("connrate_seconds")),
                   "; each test starts with none of the harness's TIME_WAIT entries, which it "
                   "removes with `ss -K`" if time_wait_starts(res) else "", p.get("udp_ports"),
                   ", ".join("{:,}".format(r) for r in p.get("udp_rates", [])), p.get("udp_step_ms"),
                   udp_extra))
    out.append("")
    out.append("## Machine and versions")
    out.append("")
    out.append("| | |")
    out.append("|---|---|")
    for k, label in (("nproc", "CPUs"), ("cpu_model", "CPU model"), ("kernel", "kernel"),
                     ("mem_total", "memory"), ("nofile_limit", "open files per process"),
                     ("ip_local_port_range", "ephemeral ports"), ("tcp_tw_reuse", "tcp_tw_reuse"),
                     ("tcp_congestion_control", "TCP congestion control (default)"),
                     ("loadavg_start", "load average at start")):
        if k == "tcp_congestion_control" and not mach.get(k):
            continue  # not recorded before 2026-12-07
        out.append("| %s | %s |" % (label, str(mach.get(k, "")).replace("\t", "–")))
    if mach.get("cpu_busy_start") is not None:
        out.append("| CPU busy in the second before the run | %.0f%% |" % (100 * mach["cpu_busy_start"]))
    if res.end:
        out.append("| load average at end | %s |" % res.end.get("loadavg_end", ""))
    for k, v in sorted(m.get("versions", {}).items()):
        out.append("| %s | %s |" % (k, v))
    out.append("| run | %s, rounds: %s |" % (m.get("timestamp", ""), ", ".join(
        "%s × %s" % (n, c) for c, n in sorted(m.get("rounds", {}).items()) if c in res.configs)))
    out.append("")
    if res.rounds:
        out.append("Load average at the start of each round: " + "; ".join(
            "%s r%d %s" % (r["config"], r["round"], " ".join(r["loadavg"].split()[:3]))
            for r in res.rounds) + ".")
        out.append("")

    out.append("## Issue #5 targets (1 worker)")
    out.append("")
    targets_section(res, out)

    if "prism-b" in res.targets:
        out.append("## A/B: prism-b against prism")
        out.append("")
        ab_section(res, out)

    for cfg in res.configs:
        out.append("## Medians: %s" % CONFIG_TITLES.get(cfg, cfg))
        out.append("")
        summary_table(res, cfg, out)
        udp_ladder(res, cfg, out)
        missing = sorted({(k[1], v[0][0], v[0][1]) for k, v in res.bad.items()
                          if k[0] == cfg and k[2] == "start"})
        if missing:
            out.append("Targets that did not start in some round:")
            out.append("")
            for t, st, reason in missing:
                out.append("- %s: %s" % (t, reason[:300]))
            out.append("")

    out.append("## Instruction counts")
    out.append("")
    insn_table(res, out)

    out.append("## Syscalls per connection and per GiB")
    out.append("")
    syscalls_table(res, out)

    for cfg in res.configs:
        out.append("## Spread between rounds: %s" % CONFIG_TITLES.get(cfg, cfg))
        out.append("")
        detail_tables(res, cfg, out)

    out.append("## Configurations used")
    out.append("")
    out.append("Ports are picked free at each start (outside the ephemeral range), so they "
               "differ between runs. prism runs its real configuration: the event log is on. "
               "The 1-worker files are started under `taskset -c 0`; the 2-worker ones unpinned.")
    out.append("")
    for c in res.configs_text:
        lang = "json" if c["name"].endswith(".json") else ("nginx" if "nginx" in c["name"] else "")
        out.append("`%s`" % c["name"])
        out.append("")
        out.append("```" + lang)
        out.append(c["text"].rstrip())
        out.append("```")
        out.append("")
    with open(path_out, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: report.py RESULTS.jsonl [OUT.md]")
    res = Results(sys.argv[1])
    write(res, sys.argv[2] if len(sys.argv) == 3 else "docs/BENCHMARKS.md", sys.argv[1])


if __name__ == "__main__":
    main()

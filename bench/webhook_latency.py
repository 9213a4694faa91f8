"""Benchmark (c): acknowledgement latency of `POST /webhooks/github` at fixed request rates.

A real `aw serve` child process (BullMQ mode: PostgreSQL inbox insert plus a
BullMQ enqueue before the 202) receives signed `issue_comment.created`
webhooks with `/approve` — a payload taken from the GitHub emulator, so it is
stored and enqueued, not ignored — each with its own X-GitHub-Delivery id and
its own body (`aw serve` answers a body it has seen before "duplicate" whatever
the delivery id, so the comment id differs, and with it the signature). No
worker consumes the jobs. Every rate gets a fresh database, queue and `aw
serve`; the first `--warmup` seconds of each are not counted.

The load generator is a lean asyncio client on raw sockets (no HTTP library:
httpx's connection pool saturated a core of its own at 200/s and measured
itself): every request is pre-built as bytes (headers, delivery id, HMAC
signature of the body) before the clock starts; keep-alive connections, one
request in flight per connection, a new connection opened only when all are
busy (at most `--max-connections`, then requests wait in the generator's
queue). Scheduling is open loop: request i is due at t0 + i/rate whatever
happened before, and latency is measured from that due time to the end of the
answer, so queueing in the generator or in the server is charged to the
server (no coordinated omission). Debian's `wrk` was not used: it is closed
loop (a connection sends its next request only after the answer), so at a
fixed rate it would hide exactly that queueing. A request not answered 202
within `--timeout` seconds of its due time is an error.

To show the generator is not the bottleneck, each rate also reports: the
achieved send rate, the lag between due time and the actual write (p99), and
the generator's own CPU use (getrusage, CPU seconds per wall second, mean and
worst 1-s sample), next to the server's CPU (/proc/<pid>/stat) and the whole
machine's busy share (/proc/stat).

Step search: --rate, then + --step each time, until p99 >= --threshold-ms or
a request fails (or --max-rate); if --rate itself fails, - --step each time
until a rate holds. The machine may be shared: each rate starts after 3 quiet
seconds, and a rate disturbed by other processes (more than --quiet-pct of a
core, a PostgreSQL checkpoint forced by someone's DROP DATABASE, or more than
--max-steal ms/s taken by the hypervisor) is run again, up to --retries times.

`chaos` lives at the repo root, so run it from there with PYTHONPATH=.:

    PYTHONPATH=. .venv/bin/python bench/webhook_latency.py --rate 200 --step 50 2>/dev/null
    PYTHONPATH=. .venv/bin/python bench/webhook_latency.py --once --timeline   # 200/s only
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from chaos.world import BOT, REPO, SECRET, USER
from common import BENCH_PREFIX, PG_ADMIN_URL, REDIS_URL, fresh_database, machine

from agent_workflow.demo.process import AwProcess, free_port
from agent_workflow.queue.bullmq_backend import BullQueue
from github_emulator import EmulatorServer
from github_emulator.webhooks import sign

WEBHOOK_PATH = "/webhooks/github"
CLK_TCK = os.sysconf("SC_CLK_TCK")


async def sample_payload() -> tuple[str, dict[str, Any]]:
    """A real `issue_comment.created` payload as the emulator sends it (no receiver listening)."""
    async with EmulatorServer(
        webhook_url="http://127.0.0.1:9/unused", webhook_secret=SECRET
    ) as emu:
        await emu.admin.create_repo(REPO)
        await emu.admin.set_permission(REPO, USER, "write")
        number = await emu.admin.create_issue(REPO, "Latency", body="Make it fast.", author=USER)
        acted = await emu.admin.comment(REPO, number, "/approve", user=USER)
        delivery = next(d for d in await emu.admin.deliveries() if d.id == acted.deliveries[0].id)
        assert delivery.payload is not None
        return delivery.event, delivery.payload


# --- the load generator ------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """One pre-built request and what happened to it (perf_counter seconds)."""

    data: bytes
    due: float = 0.0
    sent: float = 0.0
    done: float = 0.0
    status: int = 0  # HTTP status; 0 = no answer yet, -1 = connection error, -2 = timeout


def build_requests(port: int, event: str, payload: dict[str, Any], count: int) -> list[Request]:
    """`count` signed POSTs as the bytes to write, each a delivery of its own.

    `aw serve` takes a body it has seen before for a replay (200 duplicate, not
    stored) whatever its delivery id, so each request also gets its own body: the
    comment id differs, and with it the HMAC signature.
    """
    sentinel = 987654321987654321
    template = json.loads(json.dumps(payload))
    template["comment"]["id"] = sentinel
    prefix, suffix = json.dumps(template, separators=(",", ":")).encode().split(b"%d" % sentinel)
    base = time.time_ns() // 1000  # comment ids no earlier run used
    requests = []
    for i in range(count):
        body = prefix + b"%d" % (base + i) + suffix
        head = (
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
            f"host: 127.0.0.1:{port}\r\n"
            "user-agent: GitHub-Hookshot/bench\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"x-github-event: {event}\r\n"
            "x-github-hook-id: 1\r\n"
            f"x-hub-signature-256: {sign(SECRET, body)}\r\n"
            f"x-github-delivery: {uuid.uuid4()}\r\n\r\n"
        )
        requests.append(Request(head.encode() + body))
    return requests


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, minimal response parsing."""

    def __init__(self, gen: LoadGenerator) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.current: Request | None = None
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: Request) -> None:
        assert self.transport is not None
        self.current = request
        request.sent = time.perf_counter()
        self.transport.write(request.data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        total = end + 4 + _content_length(bytes(self.buffer[:end]))
        if len(self.buffer) < total:
            return
        status = int(self.buffer[9:12])
        del self.buffer[:total]
        request, self.current = self.current, None
        if request is not None:
            self.gen.answered(self, request, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


def _content_length(head: bytes) -> int:
    head = head.lower()
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    end = head.find(b"\r\n", start + 2)
    return int(head[start + 17 : end if end >= 0 else len(head)])


@dataclass
class LoadGenerator:
    """Open-loop sender over a pool of keep-alive connections."""

    host: str
    port: int
    max_connections: int
    timeout_s: float
    idle: list[Connection] = field(default_factory=list)
    busy: set[Connection] = field(default_factory=set)
    backlog: deque[Request] = field(default_factory=deque)
    connecting: int = 0
    opened: int = 0
    unresolved: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    # uvicorn closes a connection idle for 5 s; do not race it with a request.
    MAX_IDLE_S = 4.0

    def submit(self, request: Request) -> None:
        """The request is due: send it on an idle connection, else queue it (and connect)."""
        now = time.perf_counter()
        while self.idle:
            conn = self.idle.pop()  # the most recently used: the pool stays small
            if now - conn.idle_since > self.MAX_IDLE_S:
                assert conn.transport is not None
                conn.transport.close()
                continue
            self.busy.add(conn)
            conn.send(request)
            return
        self.backlog.append(request)
        self._maybe_connect()

    def _maybe_connect(self) -> None:
        if len(self.backlog) > self.connecting and (
            len(self.busy) + self.connecting < self.max_connections
        ):
            self.connecting += 1
            loop = asyncio.get_running_loop()
            task = loop.create_task(
                loop.create_connection(lambda: Connection(self), self.host, self.port)
            )
            task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[tuple[asyncio.BaseTransport, Connection]]) -> None:
        self.connecting -= 1
        if task.cancelled() or task.exception() is not None:
            if self.backlog:
                self._resolve(self.backlog.popleft(), -1)
            return
        self.opened += 1
        conn = task.result()[1]
        self.busy.add(conn)
        self._next(conn)

    def answered(self, conn: Connection, request: Request, status: int) -> None:
        """A complete response arrived on `conn`."""
        self._resolve(request, status)
        self._next(conn)

    def _next(self, conn: Connection) -> None:
        if self.backlog:
            conn.send(self.backlog.popleft())
        else:
            self.busy.discard(conn)
            conn.idle_since = time.perf_counter()
            self.idle.append(conn)

    def lost(self, conn: Connection) -> None:
        """The connection closed: a request still on it failed."""
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        request, conn.current = conn.current, None
        if request is not None:
            self._resolve(request, -1)
        self._maybe_connect()

    def _resolve(self, request: Request, status: int) -> None:
        request.done = time.perf_counter()
        request.status = status
        self.unresolved -= 1
        if self.unresolved == 0:
            self.finished.set()

    def expire(self) -> None:
        """Requests unanswered `timeout_s` after their due time fail (GitHub waits 10 s)."""
        limit = time.perf_counter() - self.timeout_s
        while self.backlog and self.backlog[0].due < limit:
            self._resolve(self.backlog.popleft(), -2)
        for conn in list(self.busy):
            if conn.current is not None and conn.current.due < limit:
                request, conn.current = conn.current, None
                self._resolve(request, -2)
                if conn.transport is not None:
                    conn.transport.abort()

    async def preconnect(self, count: int) -> None:
        """Open `count` idle connections before the clock starts."""
        loop = asyncio.get_running_loop()
        for _ in range(count):
            _, conn = await loop.create_connection(lambda: Connection(self), self.host, self.port)
            self.opened += 1
            conn.idle_since = time.perf_counter()
            self.idle.append(conn)

    def close(self) -> None:
        """Close every connection."""
        for conn in [*self.idle, *self.busy]:
            if conn.transport is not None:
                conn.transport.close()


async def send_all(gen: LoadGenerator, requests: list[Request], rate: float) -> None:
    """Open loop: request i is due at t0 + i/rate; returns when every request is resolved."""
    t0 = time.perf_counter() + 0.05
    for i, request in enumerate(requests):
        request.due = t0 + i / rate
    gen.unresolved = len(requests)
    i, n = 0, len(requests)
    while i < n:
        now = time.perf_counter()
        while i < n and requests[i].due <= now:
            gen.submit(requests[i])
            i += 1
        if i < n:
            await asyncio.sleep(requests[i].due - time.perf_counter())
    await gen.finished.wait()


# --- CPU accounting -------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU counters at one instant (seconds; machine figures in clock ticks)."""

    wall: float
    generator: float
    server: float
    server_waiting: float
    """Time the server's event-loop thread was runnable but not running (schedstat)."""
    machine_busy: int
    machine_total: int
    steal: int
    """Ticks the hypervisor ran something else while a vCPU wanted to run."""

    @staticmethod
    def take(server_pid: int) -> CpuSample:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open(f"/proc/{server_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        server = (int(fields[11]) + int(fields[12])) / CLK_TCK
        with open(f"/proc/{server_pid}/schedstat") as f:
            waiting = int(f.read().split()[1]) / 1e9
        busy, total, steal = machine_ticks()
        return CpuSample(
            time.perf_counter(),
            usage.ru_utime + usage.ru_stime,
            server,
            waiting,
            busy,
            total,
            steal,
        )


@dataclass(frozen=True)
class Shares:
    """CPU between two samples: % of one core, machine % of all cores, waits in ms per s."""

    generator: float
    server: float
    machine: float
    server_waiting: float
    steal: float


def shares(a: CpuSample, b: CpuSample) -> Shares:
    """What happened between samples `a` and `b`."""
    wall = b.wall - a.wall
    total = b.machine_total - a.machine_total
    return Shares(
        100 * (b.generator - a.generator) / wall,
        100 * (b.server - a.server) / wall,
        100 * (b.machine_busy - a.machine_busy) / total if total else 0.0,
        1000 * (b.server_waiting - a.server_waiting) / wall,
        1000 * (b.steal - a.steal) / CLK_TCK / wall,
    )


def machine_ticks() -> tuple[int, int, int]:
    """Busy, total and stolen CPU ticks of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    # user nice system idle iowait irq softirq steal: idle, iowait and steal are not our work
    return sum(ticks) - ticks[3] - ticks[4] - ticks[7], sum(ticks), ticks[7]


async def wait_quiet(limit_pct: float, max_wait_s: float, seconds: int = 3) -> float:
    """Wait (at most `max_wait_s`) for `seconds` s in a row with the machine < `limit_pct` busy.

    The machine may be shared: a run started while something else eats a core
    measures the neighbour. Returns the busy share of the last of those seconds.
    """
    deadline = time.monotonic() + max_wait_s
    quiet = 0
    while True:
        busy0, total0, _ = machine_ticks()
        await asyncio.sleep(1.0)
        busy1, total1, _ = machine_ticks()
        busy = 100 * (busy1 - busy0) / max(1, total1 - total0)
        quiet = quiet + 1 if busy < limit_pct else 0
        if quiet >= seconds or time.monotonic() >= deadline:
            return busy


def services_cpu() -> float:
    """CPU seconds used so far by every live `postgres` and `redis-server` process.

    A backend that exits takes its seconds along: a difference of two calls is a lower bound.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1 :].rsplit(")", 1)
        if name in ("postgres", "redis-server"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


async def watch(gen: LoadGenerator, server_pid: int, samples: list[CpuSample]) -> None:
    """Every second: a CPU sample, and expire requests past the timeout."""
    while True:
        samples.append(CpuSample.take(server_pid))
        gen.expire()
        await asyncio.sleep(1.0)


# --- one rate -------------------------------------------------------------------------------


@dataclass
class RateResult:
    """What one rate measured (latencies in ms, from the due time)."""

    rate: float
    sent: int
    ok: int
    errors: dict[str, int]
    latencies: list[float]
    lag_p99_ms: float
    achieved_rate: float
    answered_rate: float
    connections: int
    generator_cpu: float
    generator_cpu_worst: float
    server_cpu: float
    machine_busy: float
    server_log: dict[str, int]
    busy_before: float = 0.0
    services_cpu: float = 0.0
    server_waiting: float = 0.0
    steal: float = 0.0
    pg_sessions: int = 0
    checkpoints: int = 0

    @property
    def other_cpu(self) -> float:
        """CPU (% of a core) of everything else on the machine: neighbours, not us."""
        total = self.machine_busy * (os.cpu_count() or 1)
        return max(0.0, total - self.generator_cpu - self.server_cpu - self.services_cpu)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("inf")
        return self.latencies[max(0, min(len(self.latencies) - 1, int(q * len(self.latencies))))]

    def summary(self) -> str:
        top = self.latencies[-1] if self.latencies else float("inf")
        return (
            f"rate {self.rate:.0f}/s: sent {self.sent}, ok {self.ok}, p50 {self.pct(0.5):.1f} ms, "
            f"p99 {self.pct(0.99):.1f} ms, max {top:.1f} ms, "
            f"generator CPU {self.generator_cpu:.1f}%"
        )

    def detail(self) -> str:
        errors = ", ".join(f"{k}: {v}" for k, v in self.errors.items()) or "none"
        logged = ", ".join(f"{k} {v}" for k, v in sorted(self.server_log.items())) or "none"
        return (
            f"    sent at {self.achieved_rate:.1f}/s (send lag p99 {self.lag_p99_ms:.2f} ms), "
            f"answered at {self.answered_rate:.1f}/s, p90 {self.pct(0.9):.1f} ms, "
            f"p99.9 {self.pct(0.999):.1f} ms, errors: {errors}, connections opened "
            f"{self.connections}, new PostgreSQL sessions of aw serve {self.pg_sessions}, "
            f"PostgreSQL checkpoints requested meanwhile {self.checkpoints}, "
            f"aw serve log above INFO: {logged}\n"
            f"    CPU (% of one core): generator {self.generator_cpu:.1f} (worst 1-s "
            f"{self.generator_cpu_worst:.1f}), aw serve {self.server_cpu:.0f}, PostgreSQL + "
            f"Redis {self.services_cpu:.0f}, other processes {self.other_cpu:.0f}; machine "
            f"{self.machine_busy:.0f}% busy of {os.cpu_count()} CPUs ("
            f"{self.busy_before:.0f}% just before); aw serve's loop waited for a CPU "
            f"{self.server_waiting:.1f} ms/s, VM steal {self.steal:.1f} ms/s"
        )


def summarize(
    rate: float,
    measured: list[Request],
    gen: LoadGenerator,
    samples: list[CpuSample],
    server_log: dict[str, int],
) -> RateResult:
    sent = sorted(r.sent for r in measured if r.sent)
    ok = [r for r in measured if r.status == 202]
    errors: dict[str, int] = {}
    for r in measured:
        if r.status != 202:
            key = {-1: "connection", -2: "timeout", 0: "unanswered"}.get(r.status, str(r.status))
            errors[key] = errors.get(key, 0) + 1
    lags = sorted(r.sent - r.due for r in measured if r.sent)
    per_second = [shares(a, b) for a, b in itertools.pairwise(samples) if b.wall - a.wall > 0.5]
    whole = shares(samples[0], samples[-1])
    answered_span = max((r.done for r in ok), default=0.0) - measured[0].due
    return RateResult(
        rate=rate,
        sent=len(sent),
        ok=len(ok),
        errors=errors,
        latencies=sorted((r.done - r.due) * 1000 for r in ok),
        lag_p99_ms=lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else float("nan"),
        achieved_rate=(len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0,
        answered_rate=len(ok) / answered_span if answered_span > 0 else 0.0,
        connections=gen.opened,
        generator_cpu=whole.generator,
        generator_cpu_worst=max((s.generator for s in per_second), default=whole.generator),
        server_cpu=whole.server,
        machine_busy=whole.machine,
        server_waiting=whole.server_waiting,
        steal=whole.steal,
        server_log=server_log,
    )


def log_levels(path: Path) -> dict[str, int]:
    """How many JSON log lines of each level above INFO `aw serve` wrote."""
    counts: dict[str, int] = {}
    if not path.exists():  # --stub
        return counts
    with path.open() as f:
        for line in f:
            try:
                level = json.loads(line).get("level", "?")
            except (ValueError, AttributeError):
                level = "non-JSON"
            if level not in ("info", "debug"):
                counts[level] = counts.get(level, 0) + 1
    return counts


def timeline(requests: list[Request], samples: list[CpuSample]) -> None:
    """Per second of the run (warm-up included): requests by due second, CPU by sample."""
    print(
        "      s  due   ok  p50 ms  p99 ms  max ms  gen CPU  serve CPU  machine"
        "  serve waited  steal (ms/s)"
    )
    cpu = [shares(a, b) for a, b in itertools.pairwise(samples)]
    start = requests[0].due
    buckets: dict[int, list[Request]] = {}
    for r in requests:
        buckets.setdefault(int(r.due - start), []).append(r)
    for second, rs in sorted(buckets.items()):
        lat = sorted((r.done - r.due) * 1000 for r in rs if r.status == 202) or [float("nan")]
        c = cpu[min(second, len(cpu) - 1)]
        print(
            f"    {second:3d} {len(rs):4d} {len(lat):4d} {lat[len(lat) // 2]:7.1f} "
            f"{lat[int(0.99 * (len(lat) - 1))]:7.1f} {lat[-1]:7.1f} {c.generator:7.1f}% "
            f"{c.server:9.1f}% {c.machine:7.1f}% {c.server_waiting:13.1f} {c.steal:6.1f}"
        )


@dataclass
class Served:
    """The running `aw serve` of one rate."""

    port: int
    pid: int
    database: str
    counters: tuple[int, int] = (0, 0)
    """`pg_counters` read after `aw serve` stopped."""


async def pg_counters(database: str) -> tuple[int, int]:
    """Sessions ever opened to `database` (PostgreSQL 14+) and checkpoints requested so far.

    Requested checkpoints come from CREATE/DROP DATABASE (other test suites on a
    shared machine): they stall every commit for a while, so they are noise here.
    """
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT sessions FROM pg_stat_database WHERE datname = $1) AS sessions,"
            " (SELECT checkpoints_req FROM pg_stat_bgwriter) AS checkpoints",
            database,
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["sessions"] or 0), int(row["checkpoints"] or 0)


STUB_SERVER = """
import asyncio, sys
ANSWER = b"HTTP/1.1 202 Accepted\\r\\ncontent-length: 21\\r\\n\\r\\n{\\"status\\":\\"accepted\\"}"
class Stub(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while (end := self.buffer.find(b"\\r\\n\\r\\n")) >= 0:
            head = self.buffer[:end].lower()
            start = head.find(b"content-length:") + 15
            size = end + 4 + int(head[start:head.find(b"\\r\\n", start)])
            if len(self.buffer) < size:
                return
            self.buffer = self.buffer[size:]
            self.transport.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(Stub, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


@asynccontextmanager
async def stub_serve() -> AsyncIterator[Served]:
    """A trivial HTTP server that answers every request 202 at once (`--stub`).

    Measures the generator itself: what it adds to a latency, what rate it sustains.
    """
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STUB_SERVER, str(port), stdout=asyncio.subprocess.PIPE
    )
    served = Served(port, proc.pid, "")
    try:
        assert proc.stdout is not None
        await proc.stdout.readline()
        yield served
    finally:
        proc.terminate()
        await proc.wait()
        served.counters = await pg_counters("")  # the checkpoints (neighbours' noise)


@asynccontextmanager
async def aw_serve(workdir: Path, log_level: str) -> AsyncIterator[Served]:
    """A fresh database and queue, and `aw serve` in BullMQ mode on them."""
    port = free_port()
    queue = f"latency-{uuid.uuid4().hex[:8]}"
    async with fresh_database() as db_url:
        env = {
            "AW_DATABASE_URL": db_url,
            "AW_REDIS_URL": REDIS_URL,
            "AW_QUEUE_NAME": queue,
            "AW_QUEUE_PREFIX": BENCH_PREFIX,
            "AW_GITHUB_API_URL": "http://127.0.0.1:9",
            "AW_GITHUB_TOKEN": "unused",
            "AW_BOT_LOGIN": BOT,  # else `aw serve` asks the (absent) GitHub API who it is
            "AW_WEBHOOK_SECRET": SECRET,
            "AW_PORT": str(port),
            "AW_LOG_LEVEL": log_level,
            "AW_LOG_JSON": "1",
            "AW_CONFIG_FILE": str(workdir / "none.toml"),
        }
        serve = AwProcess("serve", env, workdir / "serve.log")
        await serve.start()
        served = Served(port, serve.pid, db_url.rsplit("/", 1)[1])
        try:
            await serve.wait_healthy(f"http://127.0.0.1:{port}")
            yield served
        finally:
            await serve.stop()
            served.counters = await pg_counters(served.database)
            bq = BullQueue(REDIS_URL, queue, BENCH_PREFIX)
            await bq.obliterate()
            await bq.close()


async def run_rate(
    args: argparse.Namespace, rate: float, event: str, payload: dict[str, Any]
) -> RateResult:
    """Fresh `aw serve`, warm-up + `seconds` of load at `rate`, the figures."""
    workdir = Path(tempfile.mkdtemp(prefix=f"aw-bench-latency-{rate:.0f}-"))
    server = stub_serve() if args.stub else aw_serve(workdir, args.log_level)
    async with server as served:
        pid = served.pid
        requests = build_requests(
            served.port, event, payload, int(rate * (args.warmup + args.seconds))
        )
        gen = LoadGenerator("127.0.0.1", served.port, args.max_connections, args.timeout)
        busy_before = await wait_quiet(args.quiet_pct, args.quiet_wait)
        await asyncio.sleep(1.0)  # let PostgreSQL's statistics catch up
        counters_before = await pg_counters(served.database)
        await gen.preconnect(4)
        gc.collect()
        gc.freeze()  # the pre-built requests are never garbage: keep the collector off them
        samples: list[CpuSample] = []
        services0 = services_cpu()
        watcher = asyncio.create_task(watch(gen, pid, samples))
        try:
            await send_all(gen, requests, rate)
        finally:
            watcher.cancel()
            gen.close()
            gc.unfreeze()
        samples.append(CpuSample.take(pid))
        services = max(0.0, services_cpu() - services0) * 100 / (samples[-1].wall - samples[0].wall)
    measured = requests[int(rate * args.warmup) :]
    result = summarize(rate, measured, gen, samples, log_levels(workdir / "serve.log"))
    if args.timeline:
        timeline(requests, samples)
    if args.keep_logs:
        print(f"    aw serve log: {workdir / 'serve.log'}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    result.busy_before = busy_before
    result.services_cpu = services
    result.pg_sessions = served.counters[0] - counters_before[0]
    result.checkpoints = served.counters[1] - counters_before[1]
    return result


async def measure(
    args: argparse.Namespace, rate: float, event: str, payload: dict[str, Any]
) -> bool:
    """Run one rate (again while neighbours disturbed it), print it; True if p99 < threshold."""
    result = await run_rate(args, rate, event, payload)
    for _ in range(args.retries):
        if (
            result.other_cpu < args.quiet_pct
            and not result.checkpoints
            and result.steal < args.max_steal
        ):
            break
        print(
            f"(disturbed: other processes used {result.other_cpu:.0f}% of a core, "
            f"{result.checkpoints} PostgreSQL checkpoints requested, VM steal "
            f"{result.steal:.0f} ms/s; again)"
        )
        print(f"    was: {result.summary()}", flush=True)
        result = await run_rate(args, rate, event, payload)
    print(result.summary(), flush=True)
    print(result.detail(), flush=True)
    return not result.errors and result.pct(0.99) < args.threshold_ms


async def main(args: argparse.Namespace) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {machine()}; load average before: {load}")
    server = "a trivial 202 server (--stub)" if args.stub else "aw serve in BullMQ mode"
    print(
        f"{server}, log level {args.log_level}; "
        f"{args.seconds:.0f} s per rate "
        f"after {args.warmup:.0f} s warm-up; latency from each request's due time"
    )
    event, payload = await sample_payload()
    if args.once:
        await measure(args, args.rate, event, payload)
        return
    highest: float | None = None
    rate = args.rate
    # Up from --rate while p99 holds; if --rate itself fails, down until one holds.
    while rate <= args.max_rate and await measure(args, rate, event, payload):
        highest = rate
        rate += args.step
    if highest is None:
        rate = args.rate - args.step
        while rate > 0 and not await measure(args, rate, event, payload):
            rate -= args.step
        highest = rate if rate > 0 else None
    elif rate > args.max_rate:
        print(f"(stopped at --max-rate {args.max_rate:.0f}/s)")
    found = f"{highest:.0f}/s" if highest is not None else "none"
    print(f"highest rate with p99 < {args.threshold_ms:.0f} ms: {found}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=200.0, help="first rate, requests/s")
    p.add_argument("--step", type=float, default=100.0, help="rate increment of the search")
    p.add_argument("--max-rate", type=float, default=5000.0)
    p.add_argument("--once", action="store_true", help="only --rate, no search")
    p.add_argument("--seconds", type=float, default=20.0, help="counted seconds per rate")
    p.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds first")
    p.add_argument("--threshold-ms", type=float, default=50.0, help="p99 bound of the search")
    p.add_argument("--timeout", type=float, default=10.0, help="s after due time: an error")
    p.add_argument("--max-connections", type=int, default=256)
    p.add_argument(
        "--quiet-pct",
        type=float,
        default=15.0,
        help="before each rate, wait for a second with the machine less busy than this (%%)",
    )
    p.add_argument("--quiet-wait", type=float, default=300.0, help="wait at most this long (s)")
    p.add_argument(
        "--max-steal",
        type=float,
        default=50.0,
        help="run a rate again if the hypervisor stole more than this (ms per s, all vCPUs)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=3,
        help="run a rate again (at most this often) if other processes used > --quiet-pct",
    )
    p.add_argument(
        "--stub",
        action="store_true",
        help="load a trivial 202 server instead of aw serve: the generator's own floor",
    )
    p.add_argument("--timeline", action="store_true", help="print each second of each rate")
    p.add_argument("--keep-logs", action="store_true", help="keep each rate's aw serve log")
    p.add_argument(
        "--log-level", default="INFO", help="AW_LOG_LEVEL of aw serve (INFO is the default)"
    )
    asyncio.run(main(p.parse_args()))

"""Plan and apply at scale against the served emulators, beside the limits the platforms impose.

    python benchmarks/run.py [--sizes 100,1000,5000] [--latency-ms 20] [--provision-seconds 2]
                             [--rate 100] [--in-flight 10] [--parallelism 50]
                             [--out benchmarks/results.json] [--skip-targets]

For each N: a fresh ``reconciler emulator serve`` subprocess on 127.0.0.1
(with ``--latency-ms`` and ``--provision-seconds``), a generated stack of N
resources over the three platforms (:mod:`benchmarks.stackgen`), then

* ``apply`` of the whole stack: wall time, API calls by route, the state
  writes (each one's time, from the CLI's hidden ``--timings FILE``);
* a no-op ``plan``: wall time, CPU time and peak memory of the CLI process
  (``os.wait4``), API calls by route (the emulator's ``/_emulator/metrics``).

Then the issue's target cases: the no-op plan at 5,000 (from the table), a
no-op plan of 1,000 with no added latency, an apply of 300 independent
Model Studio deployments, and one step's state recording at several sizes
(in process, on the local backend, bytes and time).

Lower bounds, what the platforms impose whatever the client does:

* refresh: ``pages x latency`` (every page read one after the other; pages
  fetched concurrently can beat it, so a ratio below 1 is possible);
* apply: ``provisioning along the longest dependency chain + the mutating
  calls at the platform's rate``, the rate being the smaller of
  ``--rate`` (each provider block's ``max_requests_per_second``) and
  ``--in-flight / latency``; the slowest platform counts.

Prints a table, writes the JSON to ``--out``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import stackgen  # noqa: E402

PLATFORM_OF_PREFIX = (("/api/v1", "modelstudio"), ("/zstack", "zstack"), ("/v1", "fabric"))
MUTATING = ("POST", "PUT", "DELETE", "PATCH")
CHAIN = {"fabric": 2, "modelstudio": 1, "zstack": 3}  # provisionings one after another, per platform


# -- processes -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Emulator:
    url: str
    process: subprocess.Popen[bytes]

    def metrics(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.url}/_emulator/metrics", timeout=30).json()["routes"])

    def reset(self) -> None:
        httpx.delete(f"{self.url}/_emulator/metrics", timeout=30)


@contextmanager
def emulator(workdir: Path, latency_ms: float, provision_seconds: float) -> Iterator[Emulator]:
    port = _free_port()
    log = open(workdir / "emulator.log", "wb")  # noqa: SIM115 (closed below)
    command = [
        sys.executable, "-m", "reconciler", "emulator", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--latency-ms", str(latency_ms), "--provision-seconds", str(provision_seconds),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    served = Emulator(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                served.metrics()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_text = (workdir / "emulator.log").read_text()
                    raise RuntimeError(f"the emulator did not start: {log_text}") from None
                time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Run:
    """One CLI process: its exit code, wall and CPU seconds, peak memory and what it timed."""

    code: int
    wall: float
    cpu: float
    peak_mb: float
    timings: dict[str, list[float]]
    err: str

    def check(self, what: str) -> Run:
        if self.code != 0:
            raise RuntimeError(f"{what} exited {self.code}:\n{self.err[-4000:]}")
        return self


def cli(workdir: Path, *args: str) -> Run:
    """``python -m reconciler --timings FILE ARGS`` in ``workdir``; resources from ``os.wait4``."""
    timings = workdir / "timings.json"
    timings.unlink(missing_ok=True)
    with open(workdir / "cli.out", "wb") as out, open(workdir / "cli.err", "wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--timings", str(timings), *args],
            cwd=workdir,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        code=process.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        timings=json.loads(timings.read_text()) if timings.exists() else {},
        err=(workdir / "cli.err").read_text(errors="replace"),
    )


# -- stacks and bounds -----------------------------------------------------------------------


def write_stack(
    workdir: Path, sections: Mapping[str, dict[str, Any]], url: str, args: argparse.Namespace
) -> str:
    providers = stackgen.providers_block(
        url, rate=args.rate, in_flight=args.in_flight, poll_interval=args.poll_interval
    )
    (workdir / "stack.yaml").write_text(
        stackgen.stack_text("bench", dict(sections), providers, "state/bench.json"), encoding="utf-8"
    )
    return "stack.yaml"


def platform_of(route: str) -> str:
    path = route.split(" ", 1)[1] if " " in route else route
    for prefix, name in PLATFORM_OF_PREFIX:
        if path.startswith(prefix):
            return name
    return "other"


def calls_by_platform(routes: Mapping[str, int], *, mutating: bool = False) -> dict[str, int]:
    out: dict[str, int] = {}
    for route, n in routes.items():
        if mutating and not route.startswith(MUTATING):
            continue
        if route.startswith(("PUT /zstack/v1/accounts/login",)) and mutating:
            continue  # a session, not a change
        out[platform_of(route)] = out.get(platform_of(route), 0) + n
    return out


def effective_rate(args: argparse.Namespace) -> float:
    """Calls per second one platform allows: the rate limit, or in-flight / latency if that is lower."""
    by_latency = args.in_flight / (args.latency_ms / 1000) if args.latency_ms > 0 else math.inf
    rate = args.rate if args.rate > 0 else math.inf
    return min(rate, by_latency)


def apply_bound(
    routes: Mapping[str, int], platforms: Sequence[str], args: argparse.Namespace, *, every_call: bool = False
) -> float:
    """Provisioning along the longest chain + the busiest platform's changes (``every_call``: all its
    calls, reads included) at the platform's rate."""
    rate = effective_rate(args)
    changes = calls_by_platform(routes, mutating=not every_call)
    calls = max((n / rate for n in changes.values()), default=0.0) if math.isfinite(rate) else 0.0
    chain = max((CHAIN[p] for p in platforms), default=0) * args.provision_seconds
    return chain + calls


def summary(samples: Sequence[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_ms": 1000 * ordered[-1],
        "total_s": sum(ordered),
    }


# -- the measurements ------------------------------------------------------------------------


def measure_size(n: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    workdir = scratch / f"n{n}"
    workdir.mkdir()
    m = stackgen.mix(n)
    with emulator(workdir, args.latency_ms, args.provision_seconds) as served:
        stack = write_stack(workdir, stackgen.resources(m), served.url, args)
        served.reset()
        applied = cli(workdir, "apply", stack, "--auto-approve", "--parallelism", str(args.parallelism))
        applied.check(f"apply of {n}")
        apply_routes = served.metrics()
        served.reset()
        planned = cli(workdir, "plan", stack, "--detailed-exitcode").check(f"no-op plan of {n}")
        plan_routes = served.metrics()
    pages = sum(plan_routes.values())
    refresh = sum(planned.timings.get("refresh", [0.0]))
    refresh_floor = pages * args.latency_ms / 1000
    writes = applied.timings.get("state.write", [])
    bound = apply_bound(apply_routes, ["fabric", "modelstudio", "zstack"], args)
    every_call = apply_bound(apply_routes, ["fabric", "modelstudio", "zstack"], args, every_call=True)
    return {
        "resources": n,
        "mix": m.as_dict(),
        "plan": {
            "wall_s": planned.wall,
            "cpu_s": planned.cpu,
            "peak_mb": planned.peak_mb,
            "calls": pages,
            "calls_by_route": plan_routes,
            "phases_s": {k: sum(v) for k, v in planned.timings.items()},
            "refresh_s": refresh,
            "refresh_floor_s": refresh_floor,
            "refresh_ratio": refresh / refresh_floor if refresh_floor else None,
        },
        "apply": {
            "wall_s": applied.wall,
            "cpu_s": applied.cpu,
            "peak_mb": applied.peak_mb,
            "calls": sum(apply_routes.values()),
            "mutating_calls_by_platform": calls_by_platform(apply_routes, mutating=True),
            "calls_by_route": apply_routes,
            "floor_s": bound,
            "ratio": applied.wall / bound if bound else None,
            "calls_by_platform": calls_by_platform(apply_routes),
            "floor_every_call_s": every_call,
            "ratio_every_call": applied.wall / every_call if every_call else None,
            "state_writes": summary(writes),
            "state_write_s_per_step": sum(writes) / n if writes else None,
        },
    }


def measure_noop_without_latency(n: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    workdir = scratch / f"noop{n}-no-latency"
    workdir.mkdir()
    with emulator(workdir, 0, 0) as served:
        unpaced = argparse.Namespace(**{**vars(args), "rate": 0})
        stack = write_stack(workdir, stackgen.resources(stackgen.mix(n)), served.url, unpaced)
        cli(workdir, "apply", stack, "--auto-approve", "--parallelism", str(args.parallelism)).check("apply")
        served.reset()
        runs = [
            cli(workdir, "plan", stack, "--detailed-exitcode").check("no-op plan")
            for _ in range(args.repeats)
        ]
        routes = served.metrics()
    best = min(runs, key=lambda r: r.wall)
    return {
        "resources": n,
        "wall_s": best.wall,
        "wall_s_each": [r.wall for r in runs],
        "cpu_s": best.cpu,
        "peak_mb": best.peak_mb,
        "calls": sum(routes.values()) // len(runs),
        "phases_s": {k: sum(v) for k, v in best.timings.items()},
    }


def measure_independent_apply(count: int, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """``count`` Model Studio deployments, no dependencies, default ``--parallelism``; best run counts."""
    runs: list[tuple[Run, dict[str, int]]] = []
    for attempt in range(max(1, args.repeats)):
        workdir = scratch / f"apply{count}-rate{args.rate:g}-{attempt}"
        workdir.mkdir()
        with emulator(workdir, args.latency_ms, args.provision_seconds) as served:
            stack = write_stack(workdir, {"deployments": stackgen.ms_deployments(count)}, served.url, args)
            served.reset()
            run = cli(workdir, "apply", stack, "--auto-approve").check(f"apply of {count} deployments")
            runs.append((run, served.metrics()))
    run, routes = min(runs, key=lambda pair: pair[0].wall)
    rate = effective_rate(args)
    creates = calls_by_platform(routes, mutating=True).get("modelstudio", 0)
    calls_time = creates / rate if math.isfinite(rate) else 0.0
    bound = args.provision_seconds + calls_time
    phase = sum(run.timings.get("apply", [0.0]))
    return {
        "deployments": count,
        "parallelism": 10,
        "rate_per_s": rate,
        "wall_s": run.wall,
        "wall_s_each": [r.wall for r, _ in runs],
        "apply_phase_s": phase,
        "floor_s": bound,
        "ratio": run.wall / bound,
        "apply_phase_ratio": phase / bound,
        "target_s": 1.3 * bound,
        "calls": sum(routes.values()),
        "calls_by_route": routes,
        "state_writes": summary(run.timings.get("state.write", [])),
    }


def measure_step_recording(sizes: Sequence[int], scratch: Path, steps: int = 200) -> dict[str, Any]:
    """One finished step recorded on the local backend at each size: bytes appended and time."""
    from reconciler.state import LocalBackend, ResourceState, StateDoc
    from reconciler.state.document import JournalEntry

    def resource(i: int, status: str = "RUNNING") -> ResourceState:
        return ResourceState(
            address=f"deployments.d{i}",
            platform="fabric",
            kind="service_instance",
            id=f"{i:08d}-6c1d-4a5e-9f1e-0c2b8d7a4e21",
            name=f"bench-si-{i}",
            scope={"workspace_id": "0b6f3c1e-2d4a-4c8b-9e7f-5a1d3c2b4e6f"},
            attributes={
                "name": f"bench-si-{i}",
                "workspace_id": "0b6f3c1e-2d4a-4c8b-9e7f-5a1d3c2b4e6f",
                "endpoint_id": "7d2e4f6a-8b1c-4d3e-9f5a-6b7c8d9e0f1a",
                "source": {"id": "3e5f7a9b-1c2d-4e6f-8a0b-2c4d6e8f0a1b", "version_id": "v-1"},
                "config": {"model_instance_config": {"resource": {"spec_code": "mu.llama3.8b", "min": 1}}},
                "status": status,
                "url": f"https://ep.example/v1/infers/{i:08d}",
            },
            status=status,
            dependencies=("workspaces.w0", "endpoints.e0", "models.m0"),
        )

    out: dict[str, Any] = {"fdatasync_ms": _fsync_cost(scratch)}
    for n in sizes:
        directory = scratch / f"record{n}"
        directory.mkdir()
        backend = LocalBackend(directory / "state.json")
        resources = {r.address: r for r in map(resource, range(n))}
        doc = StateDoc.new("bench").model_copy(update={"resources": resources}).bumped()
        backend.write(doc)
        base = backend.path.stat().st_size
        times: list[float] = []
        for k in range(steps):
            address = f"deployments.d{k}"
            entry = JournalEntry(
                seq=k + 1, address=address, action="update", phase="done", token="t", time="t"
            )
            doc = doc.with_resource(resource(k, "UPDATING")).with_journal(entry).bumped()
            started = time.perf_counter()
            backend.write(doc)
            times.append(time.perf_counter() - started)
        appended = backend.journal_path.stat().st_size if backend.journal_path.exists() else 0
        out[str(n)] = {
            "document_bytes": base,
            "bytes_per_step": appended / steps,
            "p50_ms": 1000 * statistics.median(times),
            "p90_ms": 1000 * sorted(times)[int(steps * 0.9)],
        }
    return out


def _fsync_cost(scratch: Path) -> float:
    path = scratch / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(50):
            started = time.perf_counter()
            os.write(fd, b"x" * 700 + b"\n")
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
    return 1000 * statistics.median(samples)


# -- report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


@dataclass
class Row:
    label: str
    figure: str
    bound: str = ""
    ratio: str = ""
    note: str = ""


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        self.rows.append(Row(*cells))

    def render(self) -> str:
        header = Row("measure", "figure", "platform bound", "ratio", "note")
        rows = [header, *self.rows]
        names = ("label", "figure", "bound", "ratio", "note")
        widths = [max(len(getattr(r, f)) for r in rows) for f in names]
        lines = []
        for i, r in enumerate(rows):
            cells = [r.label, r.figure, r.bound, r.ratio, r.note]
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    t = Table()
    lat = args.latency_ms
    for size in results["sizes"]:
        n = size["resources"]
        p, a = size["plan"], size["apply"]
        t.add(f"no-op plan N={n}", f"{p['wall_s']:.2f} s wall", "", "", f"cpu {p['cpu_s']:.2f} s")
        floor, ratio = f"{p['refresh_floor_s']:.3f} s", _ratio(p["refresh_ratio"])
        t.add("  refresh", f"{p['refresh_s']:.3f} s", floor, ratio, f"{p['calls']} pages x {lat:g} ms")
        t.add("  peak memory", f"{p['peak_mb']:.0f} MB")
        changes = sum(a["mutating_calls_by_platform"].values())
        floor, ratio = f"{a['floor_s']:.1f} s", _ratio(a["ratio"])
        t.add(
            f"apply N={n}",
            f"{a['wall_s']:.1f} s wall",
            floor,
            ratio,
            f"{a['calls']} calls, {changes} changes",
        )
        if "floor_every_call_s" in a:
            platform_name, calls = max(a["calls_by_platform"].items(), key=lambda item: item[1])
            floor, ratio = f"{a['floor_every_call_s']:.1f} s", _ratio(a["ratio_every_call"])
            note = f"the bound counting every call made ({platform_name}: {calls})"
            t.add("  every call", "", floor, ratio, note)
        w = a["state_writes"]
        if w:
            note = (
                f"p99 {w['p99_ms']:.1f} ms, max {w['max_ms']:.0f} ms, {w['n']} writes, "
                f"{1000 * a['state_write_s_per_step']:.2f} ms/step in all"
            )
            t.add("  state write", f"p50 {w['p50_ms']:.2f} ms", "", "", note)
    targets = results.get("targets", {})
    if "noop_no_latency" in targets:
        r = targets["noop_no_latency"]
        note = f"cpu {r['cpu_s']:.2f} s, {r['calls']} calls"
        t.add(
            f"target: no-op plan N={r['resources']}, 0 ms", f"{r['wall_s']:.2f} s", "1.5 s (target)", "", note
        )
    for key in ("independent_apply", "independent_apply_unpaced"):
        if key not in targets:
            continue
        r = targets[key]
        label = f"target: apply {r['deployments']} deployments, {r['rate_per_s']:.0f}/s"
        note = f"target {r['target_s']:.2f} s (1.3x), {r['calls']} calls"
        t.add(label, f"{r['wall_s']:.2f} s", f"{r['floor_s']:.2f} s", _ratio(r["ratio"]), note)
        phase = f"{r['apply_phase_s']:.2f} s"
        t.add(
            "  its apply phase",
            phase,
            "",
            _ratio(r["apply_phase_ratio"]),
            "the CLI run less start-up and plan",
        )
    if "step_recording" in targets:
        r = targets["step_recording"]
        for n, v in r.items():
            if isinstance(v, dict):
                note = f"{v['bytes_per_step']:.0f} B appended (document {v['document_bytes'] // 1024} KiB)"
                figure, fsync = f"{v['p50_ms']:.2f} ms", f"{r['fdatasync_ms']:.2f} ms fdatasync"
                t.add(f"target: record one step N={n}", figure, fsync, "", note)
    return t.render()


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="resource counts, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every emulator call")
    parser.add_argument("--provision-seconds", type=float, default=2.0, help="asynchronous lifecycle time")
    parser.add_argument("--rate", type=float, default=100.0, help="max_requests_per_second (0: none)")
    parser.add_argument("--in-flight", type=int, default=10, help="max_in_flight per platform")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="providers' poll_interval")
    parser.add_argument("--parallelism", type=int, default=50, help="apply --parallelism for the size table")
    parser.add_argument("--independent", type=int, default=300, help="deployments in the independent apply")
    parser.add_argument("--noop-size", type=int, default=1000, help="size of the no-latency no-op plan")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each target case (the best counts)")
    parser.add_argument("--skip-targets", action="store_true", help="only the size table")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    subprocess.run([sys.executable, "-m", "reconciler", "--version"], check=True, capture_output=True)  # warm
    results: dict[str, Any] = {"machine": machine(), "settings": vars(args), "sizes": [], "targets": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        scratch = Path(tmp)
        for n in sizes:
            print(f"N={n} ...", file=sys.stderr, flush=True)
            results["sizes"].append(measure_size(n, args, scratch))
        if not args.skip_targets:
            targets = results["targets"]
            print(f"no-op plan of {args.noop_size} without latency ...", file=sys.stderr, flush=True)
            targets["noop_no_latency"] = measure_noop_without_latency(args.noop_size, args, scratch)
            print(f"apply of {args.independent} independent deployments ...", file=sys.stderr, flush=True)
            targets["independent_apply"] = measure_independent_apply(args.independent, args, scratch)
            unpaced = argparse.Namespace(**{**vars(args), "rate": 0})  # in-flight / latency is the limit
            targets["independent_apply_unpaced"] = measure_independent_apply(
                args.independent, unpaced, scratch
            )
            print("one step's state recording ...", file=sys.stderr, flush=True)
            targets["step_recording"] = measure_step_recording(sorted({100, 1000, *sizes}), scratch)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["elapsed_s"] = time.monotonic() - started
    text = report(results, args)
    print(text)
    print(
        f"\nmachine: {results['machine']['platform']}, {results['machine']['cpus']} CPUs, load average "
        f"{results['machine']['load_average_at_start']} -> {results['machine']['load_average_at_end']}; "
        f"{results['elapsed_s']:.0f} s in all"
    )
    Path(args.out).write_text(json.dumps({**results, "table": text}, indent=2, default=_json) + "\n")
    return 0


def _json(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())

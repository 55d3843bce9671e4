"""Issue targets for recording and replaying real programs, measured here.

Prints, from one run on this machine:

1. recording overhead: the CPython bytearray workload
   (tests/programs/grow_bytearray.py, glibc realloc -> mremap) run plainly
   and under ``pagetab record`` (the command's own time, exec to exit),
   interleaved, median of ``--rounds``; target: at most 2x;
2. replay speed and memory: a recorded fault storm
   (tests/programs/fault_storm.py) of about 1 M events and one a quarter
   of its length, each replayed in a fresh process without keeping calls:
   seconds and peak RSS; targets: 1 M events under 10 s, memory that does
   not grow with the trace;
3. prediction: this host calibrated (``pagetab calibrate``, synthetic
   moves only), then the CPython workload's recorded mremap calls priced by
   the replay: the summed estimate against the summed recorded kernel time
   (target within 25%) and the median per-call error; the calibration never
   saw these calls (its cold-call curve, what a call pays after its thread
   faulted N bytes, is measured on synthetic faults: the total is also
   printed without it);
4. exactness: every recorded workload (CPython, fault storm, the
   userfaultfd GC tests/programs/uffd_gc.py, three threads moving
   tests/programs/threaded_moves.py, a fork without exec
   tests/programs/fork_child.py, a file mapping whose page cache is partly
   evicted tests/programs/partly_cached.py, a file cached in large folios
   tests/programs/large_folios.py) replayed under linux-6.18, with its
   differences from the recording.

Needs root (tracefs). Usage: python bench/replay_targets.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pagetab.record import check_recording, record
from pagetab.replay import replay

PROGRAMS = Path(__file__).resolve().parent.parent / "tests" / "programs"
PY = os.path.realpath(sys.executable)

CHILD = r"""
import json, resource, sys, time
from pagetab.replay import replay
t0 = time.perf_counter()
res = replay(sys.argv[1], "x86-64", "linux-6.18", keep_calls=False)
print(json.dumps({"s": time.perf_counter() - t0, "events": res.events, "exact": res.exact,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def plain(argv: list[str]) -> float:
    t0 = time.perf_counter_ns()
    subprocess.run(argv, check=True)
    return (time.perf_counter_ns() - t0) / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    check_recording()
    tmp = Path(tempfile.mkdtemp(prefix="pagetab-replay-"))
    grow = [PY, str(PROGRAMS / "grow_bytearray.py")]

    print(
        "1. recording overhead, CPython growing a bytearray (ms, median of "
        f"{args.rounds}, interleaved)"
    )
    runs: dict[str, list[float]] = {"plain": [], "recorded": []}
    for i in range(args.rounds):
        runs["plain"].append(plain(grow))
        res = record(grow, tmp / f"grow{i}.gz")
        runs["recorded"].append(res.run_ns / 1e6)
    p, r = statistics.median(runs["plain"]), statistics.median(runs["recorded"])
    print(
        f"   plain {p:.1f} ms, recorded {r:.1f} ms: {r / p:.2f}x (target <= 2x) "
        f"[{res.events} events, {res.lost} lost]"
    )

    print("2. replay speed and memory (fault storm; fresh process each)")
    sizes = {}
    for rounds in (16, 64):
        out = tmp / f"storm{rounds}.gz"
        rec = record([PY, str(PROGRAMS / "fault_storm.py"), str(rounds)], out)
        got = json.loads(
            subprocess.run(
                [sys.executable, "-c", CHILD, str(out)], check=True, capture_output=True, text=True
            ).stdout
        )
        sizes[rounds] = got
        print(
            f"   {got['events']:>9,} events ({rec.lost} lost): {got['s']:.2f} s, "
            f"peak RSS {got['rss_mb']:.0f} MB, exact {got['exact']}"
        )
    big = sizes[64]
    print(
        f"   target: 1 M events under 10 s -> {big['events'] / big['s'] / 1e6:.2f} M events/s, "
        f"{1e6 / (big['events'] / big['s']):.2f} s per million; RSS {sizes[16]['rss_mb']:.0f} "
        f"-> {big['rss_mb']:.0f} MB for 4x the events"
    )

    print("3. prediction: the CPython workload's mremap calls, this host's calibration")
    cal = tmp / "host.json"
    subprocess.run(
        [sys.executable, "-m", "pagetab", "calibrate", "--out", str(cal), "--repeats", "3"],
        check=True,
        capture_output=True,
    )
    totals = []
    for i in range(args.rounds):
        rp = replay(tmp / f"grow{i}.gz", "x86-64", "linux-6.18", calibration=str(cal))
        k = rp.kinds["mremap"]
        errs = rp.errors("mremap")
        warm = k.estimated_ns - k.cold_ns
        print(
            f"   run {i}: {k.calls} mremap calls, estimated {k.estimated_ns / 1e3:,.1f} us "
            f"({k.cold_ns / 1e3:,.1f} us of it cold), recorded {k.recorded_ns / 1e3:,.1f} us: "
            f"total error {(k.estimated_ns - k.recorded_ns) / k.recorded_ns:+.1%} "
            f"(without the cold price {(warm - k.recorded_ns) / k.recorded_ns:+.1%}), "
            f"median per-call error {statistics.median(errs):+.1%}"
        )
        totals.append((k.estimated_ns - k.recorded_ns) / k.recorded_ns)
    print(
        f"   median total error over the {args.rounds} recordings {statistics.median(totals):+.1%} "
        f"(target within 25%; each recording's own kernel time varies from run to run)"
    )

    print("4. exactness under linux-6.18")
    more = {"userfaultfd GC": ["uffd_gc.py"], "three threads moving": ["threaded_moves.py"],
            "fork without exec": ["fork_child.py"],
            "a partly cached file": ["partly_cached.py", str(tmp / "data")],
            "a file in large folios": ["large_folios.py", str(tmp / "big")]}  # fmt: skip
    for prog, *rest in more.values():
        record([PY, str(PROGRAMS / prog), *rest], tmp / prog)
    for name, path in (
        ("CPython bytearray", tmp / "grow0.gz"),
        ("fault storm", tmp / "storm16.gz"),
        *((name, tmp / prog[0]) for name, prog in more.items()),
    ):
        rp = replay(path, "x86-64", "linux-6.18")
        print(f"   {name}: {'exact' if rp.exact else 'NOT exact'} ({rp.events:,} events)")
        for d in rp.differences[:3]:
            print(f"     {d.what}: recorded {d.recorded}; replayed {d.replayed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

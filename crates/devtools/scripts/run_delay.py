"""Where a process's threads run, and how long they wait to: samples every thread of a
running process (Linux /proc) and prints, per thread, its CPU time and its run-queue
delay (runnable but not running) over the sampling window, and, per sample, each
thread's state and CPU.

This is how docs/benchmarks/next-to-pytorch.md ("The second thread waits on the first one's
CPU") found a 2-thread rayon pool whose second thread sat runnable on the first one's CPU
while the other CPU idled: look for a pool thread with little CPU time and a large delay,
and for two threads in state R on the same CPU. A pool built by
`tokenloom_tensor::pinned_pool` (C: `tokenloom_set_num_threads_pinned`) keeps its threads on
their own CPUs.

Run (no dependencies beyond Python 3):
    python3 crates/devtools/scripts/run_delay.py PID [SECONDS] [NAME_PREFIX]
SECONDS defaults to 1; NAME_PREFIX keeps only the threads whose name starts with it
(rayon names its pools' threads by the pool's `thread_name`; tokenloom's C API uses
`tokenloom-`, `tokenloom-pinned-`).
"""

import os
import sys
import time


def threads(pid, prefix):
    """{tid: (name, state, cpu, run_ns, delay_ns)} for the threads of `pid`."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/comm") as f:
                name = f.read().strip()
            if not name.startswith(prefix):
                continue
            with open(f"{base}/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"{base}/{tid}/schedstat") as f:
                run_ns, delay_ns, _ = map(int, f.read().split())
        except OSError:  # the thread ended between listdir and open
            continue
        out[tid] = (name, fields[0], int(fields[36]), run_ns, delay_ns)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pid = int(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    prefix = sys.argv[3] if len(sys.argv) > 3 else ""
    first = threads(pid, prefix)
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = threads(pid, prefix)
        samples.append(" ".join(f"{now[t][0]}:{now[t][1]}{now[t][2]}" for t in sorted(now)))
        time.sleep(0.002)
    last = threads(pid, prefix)
    print(f"{'thread':24s} {'cpu ms':>8s} {'waited ms':>10s}")
    for tid in sorted(last):
        name, _, _, run_ns, delay_ns = last[tid]
        _, _, _, run0, delay0 = first.get(tid, last[tid])
        print(f"{name + ' ' + tid:24s} {(run_ns - run0) / 1e6:8.1f} {(delay_ns - delay0) / 1e6:10.1f}")
    print("samples (thread:state+cpu), every 2 ms:")
    for row in samples[:50]:
        print("  " + row)


if __name__ == "__main__":
    main()

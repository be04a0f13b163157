#!/usr/bin/env python3
"""Runs one peer job queue the way hl-bench runs hl-worker, for hl-bench --peers.

    peer.py SYSTEM --dsn URL --processes P --width W --jobs N --light L --warmup K

SYSTEM is a module next to this file (pgqueuer_peer, procrastinate_peer)
that knows how to install its schema, insert no-op jobs in bulk and consume
them; W is its knob (pgqueuer's batch size, procrastinate's concurrency).
P consumer processes run the system's own worker loop; the job itself does
nothing but note when it ran, in shared memory, so that no extra database
statement is made on its behalf.

hl-bench drives it over stdin/stdout, one line at a time:

    driver: ready PID...   consumers up, K warm-up jobs done; PIDs are the
                           server backends of this driver's own connections
                           (hl-bench leaves their CPU out, as its own)
    bench:  go             N jobs inserted in one call; waits until every
                           job ran and the queue's table shows none left
    driver: drained
    bench:  light          L jobs one at a time into idle consumers
    driver: done
    bench:  quit
    driver: one JSON object with the figures

Times are this host's wall clock: the bulk insert's start stands for
hl-worker's created_at, a job's start for its attempted_at.
"""

import argparse
import asyncio
import importlib
import json
import multiprocessing
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

DRAIN_POLL_S = 0.01
LIGHT_PAUSE_S = 0.02


def consumer(system_name, dsn, width, counter, last_start, stop, starts_out):
    """One consumer process: the system's worker loop until `stop` is set."""
    system = importlib.import_module(system_name)
    starts = []

    def on_job():
        now = time.time()
        starts.append(now)
        with counter.get_lock():
            counter.value += 1
            last_start.value = now

    asyncio.run(system.consume(dsn, width, on_job, stop.is_set))
    starts_out.put(starts)


def cpu_seconds(pid):
    """utime + stime of a process from /proc/PID/stat (fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


async def readline():
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


def say(text):
    print(text, flush=True)


async def expect(word):
    line = await readline()
    if line != word:
        raise SystemExit(f"peer.py: expected {word!r} from hl-bench, got {line!r}")


async def wait_for_count(counter, target, timeout):
    deadline = time.monotonic() + timeout
    while counter.value < target:
        if time.monotonic() > deadline:
            raise SystemExit(f"peer.py: only {counter.value} of {target} jobs ran within {timeout:.0f} s")
        await asyncio.sleep(0.001)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("system")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--light", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args()
    system = importlib.import_module(args.system)

    client = await system.Client.open(args.dsn)
    await client.prepare()

    # Spawned, not forked: the parent holds open connections.
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    last_start = context.Value("d", 0.0)
    stop = context.Event()
    starts_out = context.Queue()
    consumers = [
        context.Process(target=consumer, args=(args.system, args.dsn, args.width, counter, last_start, stop, starts_out))
        for _ in range(args.processes)
    ]
    for process in consumers:
        process.start()

    await client.insert(args.warmup)
    await wait_for_count(counter, args.warmup, 120)
    await client.wait_empty(120)
    say("ready " + " ".join(str(pid) for pid in client.backend_pids))

    await expect("go")
    cpu_before = sum(cpu_seconds(p.pid) for p in consumers)
    inserted_at = time.time()
    await client.insert(args.jobs)
    await wait_for_count(counter, args.warmup + args.jobs, 60 + args.jobs / 20)
    await client.wait_empty(60)
    drained_at = time.time()
    cpu = sum(cpu_seconds(p.pid) for p in consumers) - cpu_before
    say("drained")

    await expect("light")
    light_began = time.time()
    light_starts = []
    for index in range(args.light):
        await asyncio.sleep(LIGHT_PAUSE_S)
        before = counter.value
        at = time.time()
        await client.insert(1)
        await wait_for_count(counter, before + 1, 30)
        light_starts.append(1000 * (last_start.value - at))
    say("done")

    await expect("quit")
    stop.set()
    starts = []
    for _ in consumers:
        starts += starts_out.get(timeout=60)
    for process in consumers:
        process.join(timeout=30)
    await client.close()

    bulk = sorted(1000 * (s - inserted_at) for s in starts if inserted_at <= s < light_began)
    light_starts.sort()

    def percentile(values, p):
        if not values:
            return None
        return values[min(len(values) - 1, max(0, int(-(-p * len(values) // 100)) - 1))]

    say(json.dumps({
        "jobs_per_s": args.jobs / (drained_at - inserted_at),
        "start_p50_ms": percentile(bulk, 50),
        "worker_cpu_ms_per_job": 1000 * cpu / args.jobs,
        "light_start_p50_ms": percentile(light_starts, 50),
        "light_start_p99_ms": percentile(light_starts, 99),
        "bulk_jobs_seen": len(bulk),
        "version": system.version(),
    }))


if __name__ == "__main__":
    asyncio.run(main())

#!/usr/bin/env python3
"""Starts the pipeline's stage processes on an existing Ray cluster.

tools/pipeline/pipeline.sh calls this under `scheduler.type=ray`; it keeps
supervising each stage by the pid of one `run` process, as it does a local
stage, so exit codes, naming a failed stage and Ctrl-C work the same.

  ray_launch.py place   --group G --nodes N --slots-per-node S
  ray_launch.py run     --group G --stage NAME --log FILE --bundle B [--gpus K] -- CMD...
  ray_launch.py run     --group G --stage trainer --log FILE --rank-bundles 0,0,1 \
                        --rank-log-dir DIR -- CMD...
  ray_launch.py release --group G

`place` creates one detached placement group named G with one bundle per
node (PACK, as AReaL's Ray launcher does): {GPU: S, CPU: c} on a cluster with
GPUs, {CPU: c} on one without, c being the fewest CPUs of any node. Bundle 0
is pinned to this node: the pipeline script creates the shared-memory rings
here, and the feeder, bridge and scorer that use them run in bundle 0.

`run` starts CMD in one Ray actor per process (the stage's, or one per
trainer rank) on the given bundle, with this process's environment, its
output appended to FILE, and exits with CMD's status (a signal N as 128+N).
Trainer ranks get torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT of rank 0's node); when one
rank fails the others are stopped, as torchrun does. SIGTERM or SIGINT is
passed on to CMD (rank 0 last). If this process is killed, Ray ends its
actors, and CMD dies with its actor (PR_SET_PDEATHSIG), so nothing is left.
The first lines of FILE name the Ray node, actor and pid of each process.
In CMD, `{ray_node_ip}` becomes the address of the node it runs on (a
server binds there, so that a bridge on another node reaches it).

The cluster: RAY_ADDRESS (host:port of the head's GCS, or `auto`, the
default: the cluster this node belongs to). This must run on a node of the
cluster (Ray Client addresses, ray://, are refused).
"""

import argparse
import ctypes
import os
import signal
import socket
import sys
import threading
import time

try:
    import ray
    from ray.util.placement_group import (get_placement_group, placement_group,
                                          placement_group_table, remove_placement_group)
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except ImportError:
    sys.exit("ray_launch: cannot import ray; tools/setup.sh installs it into "
             "$HOME/.cache/moerl/ray-env (put that folder on PYTHONPATH)")

PR_SET_PDEATHSIG = 1
STARTUP_TIMEOUT_S = 30  # AReaL's startup_timeout for placement groups


def fail(message):
    print("ray_launch: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def connect(group):
    address = os.environ.get("RAY_ADDRESS", "") or "auto"
    if address.startswith("ray://"):
        fail("RAY_ADDRESS=%s is a Ray Client address; run the pipeline on a node of the "
             "cluster with RAY_ADDRESS=<head>:<gcs port> or auto" % address)
    try:
        ray.init(address=address, namespace=namespace_of(group), log_to_driver=False,
                 logging_level="ERROR", configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        fail("cannot join the Ray cluster at RAY_ADDRESS=%s (start one with `ray start "
             "--head`, or set RAY_ADDRESS): %s" % (address, e))


def namespace_of(group):
    return "moerl-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in group)


def alive_nodes():
    return [n for n in ray.nodes() if n.get("Alive")]


def describe_nodes():
    return "; ".join("%s %s %s" % (n["NodeID"][:8], n["NodeManagerAddress"],
                                   {k: v for k, v in n["Resources"].items()
                                    if k in ("CPU", "GPU", "memory")})
                     for n in alive_nodes())


def group_or_none(group):
    try:
        return get_placement_group(group)
    except ValueError:
        return None


# --- place / release


def place(args):
    connect(args.group)
    nodes = alive_nodes()
    if len(nodes) < args.nodes:
        fail("cluster.n_nodes is %d but the Ray cluster has %d live node(s): %s"
             % (args.nodes, len(nodes), describe_nodes()))
    here = ray.get_runtime_context().get_node_id()
    local = [n for n in nodes if n["NodeID"] == here]
    if not local:
        fail("this node (%s) is not a live node of the Ray cluster" % here)
    has_gpu = any(n["Resources"].get("GPU", 0) > 0 for n in nodes)
    cpus = int(min(n["Resources"].get("CPU", 0) for n in nodes))
    bundle = {}
    if cpus > 0:
        bundle["CPU"] = cpus
    if has_gpu:
        bundle["GPU"] = args.slots_per_node
    if not bundle:
        fail("the Ray cluster's nodes offer neither CPUs nor GPUs: " + describe_nodes())
    bundles = [dict(bundle) for _ in range(args.nodes)]
    bundles[0]["node:" + local[0]["NodeManagerAddress"]] = 0.001
    stale = group_or_none(args.group)
    if stale is not None:  # left by a pipeline that was killed (the run folder is locked)
        remove_placement_group(stale)
    pg = placement_group(bundles, strategy="PACK", name=args.group, lifetime="detached")
    try:
        ray.get(pg.ready(), timeout=args.timeout)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(pg)
        fail("placement group of %d bundle(s) %s (bundle 0 on this node) not ready within %ds; "
             "the cluster's nodes: %s" % (args.nodes, bundle, args.timeout, describe_nodes()))
    table = placement_group_table(pg)
    ips = {n["NodeID"]: n["NodeManagerAddress"] for n in nodes}
    where = [ips.get(table["bundles_to_node_id"][i], "?") for i in range(args.nodes)]
    print("ray_launch: placement group %s: %d bundle(s) of %s on %s"
          % (args.group, args.nodes, bundle, " ".join(where)), file=sys.stderr, flush=True)


def release(args):
    connect(args.group)
    pg = group_or_none(args.group)
    if pg is not None:
        remove_placement_group(pg)


# --- run


@ray.remote(num_cpus=0, max_concurrency=4)
class StageProcess:
    """One process of a stage, a child of this actor's worker."""

    def __init__(self):
        self.proc = None
        self.copier = None

    def where(self):
        return {"node_id": ray.get_runtime_context().get_node_id(),
                "ip": ray.util.get_node_ip_address(),
                "actor_id": ray.get_runtime_context().get_actor_id(),
                "worker_pid": os.getpid(),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "")}

    def free_port(self):
        # AReaL's range: below the ephemeral ports. Bound again later by the
        # trainer's rank 0; the gap is short.
        for port in range(10000 + os.getpid() % 20000, 32768):
            with socket.socket() as s:
                try:
                    s.bind(("", port))
                    return port
                except OSError:
                    continue
        raise RuntimeError("no free port in 10000-32767")

    def start(self, argv, env, cwd, log_path, prefix, copy_path):
        import subprocess
        if os.environ.get("CUDA_VISIBLE_DEVICES"):  # Ray's GPU assignment for this actor
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        libc = ctypes.CDLL(None, use_errno=True)

        def die_with_actor():
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

        log = open(log_path, "ab", buffering=0)
        if not prefix:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=die_with_actor)
            log.close()
        else:  # torchrun's --tee: prefixed into the stage log, whole into the rank's own
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         preexec_fn=die_with_actor)
            copy = open(copy_path, "ab", buffering=0)

            def tee():
                for line in self.proc.stdout:
                    copy.write(line)
                    log.write(prefix.encode() + line)
                copy.close()
                log.close()

            self.copier = threading.Thread(target=tee, daemon=True)
            self.copier.start()
        return self.proc.pid

    def wait(self):
        code = self.proc.wait()
        if self.copier is not None:
            self.copier.join(timeout=10)
        return code

    def signal(self, signum):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)


def stage_environment():
    # The stage sees the pipeline's environment, not the Ray worker's; Ray's
    # own variables and the GPU list (set per actor) stay out.
    drop = ("RAY_", "CUDA_VISIBLE_DEVICES")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def exit_status(code):
    return 128 - code if code < 0 else code


def run(args):
    if not args.command:
        fail("run: no command after --")
    connect(args.group)
    # After ray.init, which installs a C++ handler that aborts on SIGTERM.
    stop = []  # signals received; acted on once the processes have started

    def on_signal(signum, _frame):
        stop.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pg = group_or_none(args.group)
    if pg is None:
        fail("no placement group %s (ray_launch.py place creates it)" % args.group)
    n_bundles = len(pg.bundle_specs)
    has_gpu = pg.bundle_specs[0].get("GPU", 0) > 0
    ranks = args.rank_bundles is not None
    bundles = [int(b) for b in args.rank_bundles.split(",")] if ranks else [args.bundle]
    for b in bundles:
        if not 0 <= b < n_bundles:
            fail("bundle %d of stage %s: the placement group has %d" % (b, args.stage, n_bundles))
    gpus = (1 if ranks else args.gpus) if has_gpu else 0

    actors = []
    for i, b in enumerate(bundles):
        name = "%s/%d" % (args.stage, i) if ranks else args.stage
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=b)
        actors.append(StageProcess.options(name=name, num_gpus=gpus,
                                           scheduling_strategy=strategy).remote())
    try:
        places = ray.get([a.where.remote() for a in actors], timeout=args.timeout)
    except ray.exceptions.GetTimeoutError:
        fail("stage %s: its actor(s) did not start within %ds (GPUs per process: %d); the "
             "cluster's nodes: %s" % (args.stage, args.timeout, gpus, describe_nodes()))

    env = stage_environment()
    envs = [dict(env) for _ in actors]
    if ranks:
        master_port = ray.get(actors[0].free_port.remote())
        for i, e in enumerate(envs):
            on_node = [r for r, b in enumerate(bundles) if b == bundles[i]]
            e.update(RANK=str(i), WORLD_SIZE=str(len(bundles)), MASTER_ADDR=places[0]["ip"],
                     MASTER_PORT=str(master_port), LOCAL_WORLD_SIZE=str(len(on_node)),
                     # One GPU per actor (Ray's CUDA_VISIBLE_DEVICES): it is device 0.
                     LOCAL_RANK=str(0 if gpus else on_node.index(i)))
    cwd = os.getcwd()
    if ranks:
        os.makedirs(args.rank_log_dir, exist_ok=True)
    with open(args.log, "a") as log:
        for i, p in enumerate(places):
            what = "rank %d/%d" % (i, len(places)) if ranks else "process"
            log.write("ray_launch: stage %s %s: node %s (%s), bundle %d, actor %s, job %s%s\n"
                      % (args.stage, what, p["node_id"], p["ip"], bundles[i], p["actor_id"],
                         ray.get_runtime_context().get_job_id(),
                         ", CUDA_VISIBLE_DEVICES=" + p["cuda_visible_devices"] if gpus else ""))
    starts = []
    for i, a in enumerate(actors):
        prefix = "[rank%d]: " % i if ranks else ""
        copy = os.path.join(args.rank_log_dir, "rank%d.log" % i) if ranks else ""
        argv = [arg.replace("{ray_node_ip}", places[i]["ip"]) for arg in args.command]
        starts.append(a.start.remote(argv, envs[i], cwd if os.path.isdir(cwd) else None,
                                     args.log, prefix, copy))
    pids = ray.get(starts)
    with open(args.log, "a") as log:
        log.write("ray_launch: stage %s started, pid(s) %s\n" % (args.stage, " ".join(map(str, pids))))

    def signal_all(signum):  # rank 0 last: it holds the c10d store the others talk to
        for a in list(actors[1:]) + actors[:1]:
            try:
                ray.get(a.signal.remote(signum), timeout=10)
            except Exception:  # an actor that already ended
                pass

    waits = {a.wait.remote(): i for i, a in enumerate(actors)}
    codes = {}
    forwarded = False
    status = None
    while waits:
        done, _ = ray.wait(list(waits), num_returns=1, timeout=0.5)
        for ref in done:
            i = waits.pop(ref)
            try:
                codes[i] = exit_status(ray.get(ref))
            except ray.exceptions.RayActorError as e:
                codes[i] = 1
                with open(args.log, "a") as log:
                    log.write("ray_launch: stage %s: the actor of process %d died: %s\n"
                              % (args.stage, i, e))
            if codes[i] != 0 and status is None:
                status = codes[i]
                if waits and not forwarded:  # torchrun's rule: one rank fails, all stop
                    forwarded = True
                    signal_all(signal.SIGTERM)
        if stop and not forwarded:
            forwarded = True
            signal_all(signal.SIGTERM)
    if status is None:
        status = 128 + stop[0] if stop else 0
    with open(args.log, "a") as log:
        log.write("ray_launch: stage %s ended, status %s\n"
                  % (args.stage, " ".join(str(codes[i]) for i in sorted(codes))))
    for a in actors:
        ray.kill(a)
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("place")
    p.add_argument("--group", required=True)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--slots-per-node", type=int, required=True)
    p.add_argument("--timeout", type=int, default=STARTUP_TIMEOUT_S)
    r = sub.add_parser("release")
    r.add_argument("--group", required=True)
    s = sub.add_parser("run")
    s.add_argument("--group", required=True)
    s.add_argument("--stage", required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--bundle", type=int, default=0)
    s.add_argument("--gpus", type=float, default=0)
    s.add_argument("--rank-bundles", help="comma-separated bundle of each trainer rank")
    s.add_argument("--rank-log-dir")
    s.add_argument("--timeout", type=int, default=STARTUP_TIMEOUT_S)
    s.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.what == "run":
        if args.command and args.command[0] == "--":
            args.command = args.command[1:]
        if args.rank_bundles is not None and not args.rank_log_dir:
            fail("run: --rank-bundles needs --rank-log-dir")
        sys.exit(run(args))
    {"place": place, "release": release}[args.what](args)


if __name__ == "__main__":
    main()

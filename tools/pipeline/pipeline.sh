#!/usr/bin/env bash
# moerl pipeline (`bazel run //:pipeline -- [--config x.yaml] [key=value ...]`):
# asynchronous GRPO end to end on one machine.
#
#   dataset_feeder --(ring: prompts)--> rollout_bridge <--HTTP--> rollout/server (x n)
#        rollout_bridge --(ring: groups)--> reward_scorer --> batches/ --> trainer (ranks)
#        trainer --> weights/v<N> --> rollout_bridge --> /update_weights_from_disk
#
# Every rule (run folder, how many servers and trainer ranks, timeouts) comes
# from tools/pipeline/pipeline_plan, which reads the same YAML + overrides as
# every stage; this script only starts, watches and stops processes.
# Without --config it runs the embedded default (tools/pipeline/default.yaml).
#
# It creates the rings, starts servers, feeder, bridge, scorer and trainer
# (through torchrun when there is more than one rank) with one log each under
# <run>/logs/, prints a line per training step, and exits:
#   0  when the trainer finished (the other stages are then stopped);
#   1  naming the stage and the end of its log when a stage failed or hung;
#   130/143 after Ctrl-C / SIGTERM (every stage stopped, rings removed; a
#      second Ctrl-C kills the stages at once).
# A run folder that holds a live run is refused; rerunning with
# recover.mode=auto resumes an interrupted one. pipeline.dry_run=true prints
# the plan and has every stage check its arguments (--check_config), then
# exits (0: all accept them) without starting or writing anything.
#
# scheduler.type=ray runs every stage as a Ray actor on an existing Ray
# cluster (RAY_ADDRESS), in one placement group with a bundle per node, through
# tools/ray_launch/ray_launch.py; the supervision below is the same.
# scheduler.type=slurm runs as a Slurm job's batch step and starts the
# trainer ranks and the servers as srun steps on the job's nodes.
set -euo pipefail

# --- where the binaries are (bazel run / bazel test runfiles, or a checkout)
runfiles="${RUNFILES_DIR:-${TEST_SRCDIR:-}}"
if [[ -z "$runfiles" && -d "$0.runfiles" ]]; then runfiles="$0.runfiles"; fi
root="${runfiles:+$runfiles/moerl}"
if [[ -z "$root" || ! -x "$root/dataset/dataset_feeder" ]]; then
  root="$(cd "$(dirname "$0")/.." && pwd)/bazel-bin"
fi
root=$(cd "$root" && pwd)
# Stages find their data files (the small tokenizer) through the runfiles.
if [[ -d "$root/../moerl" && -z "${RUNFILES_DIR:-}" ]]; then export RUNFILES_DIR=$(cd "$root/.." && pwd); fi
bin() { printf '%s/%s' "$root" "$1"; }
plan_tool=$(bin tools/pipeline/pipeline_plan)
feeder=$(bin dataset/dataset_feeder)
bridge=$(bin rollout/rollout_bridge)
server=$(bin rollout/server/server)
scorer=$(bin reward/reward_scorer)
trainer=$(bin trainer/trainer)
ring=$(bin tools/ring/ring)
synth=$(bin dataset/gsm8k_synth)
python="$(bin ../libtorch/python3)"
[[ -x "$python" ]] || python="${MOERL_PYTHON:-python3}"
default_config=$(bin tools/pipeline/default.yaml)
default_model=$(bin tools/pipeline/default_model)
report_script=$(bin tools/pipeline/report.py)
ray_launch_script=$(bin tools/ray_launch/ray_launch.py)

die() { echo "pipeline: $*" >&2; exit 1; }

# --- arguments: --config FILE (default: the embedded default) + overrides
args=("$@")
embedded=1
for a in "${args[@]}"; do [[ "$a" == --config || "$a" == --config=* ]] && embedded=0; done
# Relative paths are the user's, not the runfiles tree's.
if [[ -n "${BUILD_WORKING_DIRECTORY:-}" ]]; then cd "$BUILD_WORKING_DIRECTORY"; fi

if [[ $embedded -eq 1 ]]; then
  # The embedded default: its data and model live in the run folder and the
  # runfiles; the user's overrides come last and win.
  plan=$("$plan_tool" --config "$default_config" "${args[@]}") || exit 1
  eval "$plan"
  args=(--config "$default_config"
    "++train_dataset.path=$run_dir/data/train.jsonl"
    "++valid_dataset.path=$run_dir/data/test.jsonl"
    "++trainer.sft_dataset=$run_dir/data/sft.jsonl"
    "++actor.path=$default_model"
    "++tokenizer_path=$root/tools/pipeline/default_tokenizer"
    "${args[@]}")
  # One intra-op thread per stage unless told otherwise: server and trainer
  # share a small machine's cores, and more threads spin against each other
  # (an SFT step under load 8 on 2 cores: 13-32 s with 2 threads, 2 s with 1).
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
fi
plan=$("$plan_tool" "${args[@]}") || exit 1
eval "$plan"

# --- what each stage gets besides the shared arguments
# The SFT warm-up: the trainer in SFT mode, one process (its SFT mode does
# not split data across ranks), in the sibling trial <trial>.sft. The
# embedded default evaluates SFT's last weights (RL's start) once: the
# baseline, on the same held-out problems and seed as RL's evals.
sft_eval=null
[[ $embedded -eq 1 ]] && sft_eval=$sft_steps
sft_extra=("trial_name=$trial_name.sft" "++trainer.mode=sft" "++total_train_steps=$sft_steps"
  "++train_dataset.batch_size=$sft_batch_size" "++actor.optimizer.lr=$sft_lr" "++recover.mode=auto"
  "++evaluator.freq_steps=$sft_eval" "++allocation_mode=")
server_extra() {  # index: the server's own arguments
  printf '%s\n' "++sglang.model_path=$run_dir/weights" "+server.address_file=$run_dir/server.$1.address"
}
# The feeder skips the groups already in batch files (all of them are trained
# by the trainer's final history); a fresh run has none.
feeder_extra=("+dataset.ring=$prompt_ring" "+dataset.skip_batches_dir=$run_dir/batches")
bridge_extra=("+rollout.prompt_ring=$prompt_ring" "+rollout.trajectory_ring=$trajectory_ring")
scorer_extra=("+reward.ring=$trajectory_ring" "+reward.group_messages=true")

# --- pipeline.dry_run: the plan, and every stage's verdict on the
# configuration it would get (--check_config); nothing is started or written.
if [[ $dry_run -eq 1 ]]; then
  printf '%s\n' "$plan"
  rejected=0
  check_stage() {  # name, command...
    local name=$1 out; shift
    if out=$("$@" --check_config 2>&1); then
      echo "pipeline: dry run: $name accepts the configuration"
      grep -F "note:" <<<"$out" | sed "s/^/pipeline: dry run: /" || true
    else
      echo "pipeline: dry run: $name rejects the configuration: $out" >&2
      rejected=1
    fi
  }
  [[ $sft_steps -gt 0 ]] && check_stage sft "$trainer" "${args[@]}" "${sft_extra[@]}"
  check_stage trainer "$trainer" "${args[@]}"
  addresses=($external_servers)
  for ((i = 0; i < n_servers; i++)); do
    mapfile -t extra < <(server_extra "$i")
    check_stage "server.$i" "$server" "${args[@]}" "${extra[@]}"
    addresses+=("127.0.0.1:$((30000 + i))")  # stand-ins for the addresses they would write
  done
  check_stage feeder "$feeder" "${args[@]}" "${feeder_extra[@]}"
  check_stage bridge "$bridge" "${args[@]}" "++rollout.server_addrs=$(IFS=,; echo "${addresses[*]}")" \
    "${bridge_extra[@]}"
  check_stage scorer "$scorer" "${args[@]}" "${scorer_extra[@]}"
  [[ $rejected -eq 0 ]] || die "dry run: a stage rejects the configuration (above)"
  echo "pipeline: dry run: $n_servers server(s), $trainer_ranks trainer rank(s), run folder $run_dir; nothing started"
  exit 0
fi

logs="$run_dir/logs"
mkdir -p "$logs"
exec 9>"$run_dir/.pipeline.lock"
if ! flock -n 9; then
  die "run folder $run_dir holds a live run (pid $(cat "$run_dir/.pipeline.pid" 2>/dev/null || echo '?')); stop it or choose another trial_name"
fi
echo $$ > "$run_dir/.pipeline.pid"
if [[ $scheduler == slurm && ( -z "${SLURM_JOB_ID:-}" || -z "${SLURMD_NODENAME:-}" ) ]]; then
  rm -f "$run_dir/.pipeline.pid"
  die "scheduler.type=slurm: run the pipeline inside a Slurm job, as its batch step on the allocation's first node (sbatch; examples/slurm/pipeline.sbatch), so that srun can place the stages; SLURM_JOB_ID or SLURMD_NODENAME is not set here"
fi
if [[ $resume -eq 0 ]] && [[ -e "$run_dir/weights" || -e "$run_dir/batches" || -e "$run_dir/stats.jsonl" ]]; then
  rm -f "$run_dir/.pipeline.pid"
  die "run folder $run_dir holds an earlier run; resume it with recover.mode=auto, or choose another trial_name"
fi
# The resolved configuration beside the run (the report shows it).
"$plan_tool" --write_config "${args[@]}" || { rm -f "$run_dir/.pipeline.pid"; die "could not write $run_dir/config.yaml"; }

# --- supervision state
declare -A stage_pid=()   # stage name -> pid
declare -A probe_pid=()   # server name -> pid of its /health_generate probe in flight
stopping=0
interrupts=0

say() { [[ "$output_mode" == quiet ]] || echo "$@" >&2; }

process_tree() {  # pids -> each pid and its descendants
  local pid
  for pid in "$@"; do
    echo "$pid"
    process_tree $(pgrep -P "$pid" 2>/dev/null || true)
  done
}

stop_stages() {  # TERM, then KILL after a grace period
  local grace=${1:-20} name pid tree=()
  # A stage's processes (torchrun's ranks) as they are now: a stopped (hung)
  # one is continued so that it sees the TERM passed on to it, and whatever
  # is left at the deadline is killed with its stage.
  for name in "${!stage_pid[@]}"; do tree+=($(process_tree "${stage_pid[$name]}")); done
  for name in "${!stage_pid[@]}"; do kill -TERM "${stage_pid[$name]}" 2>/dev/null || true; done
  for pid in "${tree[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  local deadline=$((SECONDS + grace))
  for name in "${!stage_pid[@]}"; do
    while kill -0 "${stage_pid[$name]}" 2>/dev/null && [[ $SECONDS -lt $deadline ]]; do sleep 0.2; done
    kill -KILL "${stage_pid[$name]}" 2>/dev/null || true
    wait "${stage_pid[$name]}" 2>/dev/null || true
  done
  for pid in "${tree[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [[ $SECONDS -lt $deadline ]]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  stage_pid=()
}

cleanup() {
  stop_stages 20
  local probe
  for probe in "${probe_pid[@]}"; do [[ -z "$probe" ]] || kill "$probe" 2>/dev/null || true; done
  [[ -z "${ray_group:-}" ]] || "${ray_launch[@]}" release --group "$ray_group" >/dev/null 2>&1 || true
  "$ring" remove "$prompt_ring" >/dev/null 2>&1 || true
  "$ring" remove "$trajectory_ring" >/dev/null 2>&1 || true
  rm -f "$run_dir/.pipeline.pid"
}
trap cleanup EXIT

on_signal() {
  interrupts=$((interrupts + 1))
  if [[ $interrupts -ge 2 ]]; then
    say "pipeline: second interrupt: killing every stage"
    local name
    for name in "${!stage_pid[@]}"; do kill -KILL "${stage_pid[$name]}" 2>/dev/null || true; done
  fi
  stopping=1
}
trap on_signal INT TERM

fail_stage() {  # name, reason
  local name=$1 reason=$2
  echo "pipeline: stage '$name' $reason; last lines of $logs/$name.log:" >&2
  tail -n 15 "$logs/$name.log" >&2 || true
  exit 1
}

start_trainer() {  # name, trainer arguments...: through torchrun when there are several ranks
  local name=$1; shift
  if [[ $scheduler == slurm ]]; then  # one srun step; ranks read SLURM_PROCID and the node list
    local nodes per_node
    nodes=$(tr ' ' '\n' <<<"$trainer_rank_nodes" | sort -un | wc -l)
    per_node=$(( (trainer_ranks + nodes - 1) / nodes ))
    start_stage "$name" env "MASTER_PORT=$slurm_master_port" srun --job-name="$name" --overlap --kill-on-bad-exit=1 \
      --relative=0 --nodes="$nodes" --ntasks="$trainer_ranks" --ntasks-per-node="$per_node" \
      $(slurm_gpus 1) "$trainer" "$@"
  elif [[ $scheduler == ray ]]; then  # one actor per rank, torchrun's variables set by the launcher
    local bundles
    bundles=$(tr ' ' , <<<"$trainer_rank_nodes")
    start_stage "$name" "${ray_launch[@]}" run --group "$ray_group" --stage "$name" \
      --log "$logs/$name.log" --rank-bundles "$bundles" --rank-log-dir "$logs/$name-ranks" \
      -- "$trainer" "$@"
  elif [[ $trainer_ranks -gt 1 ]]; then
    start_stage "$name" "$python" -m torch.distributed.run --no-python --standalone \
      --nproc-per-node "$trainer_ranks" --log-dir "$logs/$name-ranks" --tee 3 "$trainer" "$@"
  else
    start_stage "$name" "$trainer" "$@"
  fi
}

start_stage() {  # name, command...
  local name=$1; shift
  "$@" >>"$logs/$name.log" 2>&1 &
  stage_pid[$name]=$!
}

start_stage_on() {  # name, node, GPUs, command...: under Ray in that node's bundle, else here
  local name=$1 node=$2 gpus=$3; shift 3
  if [[ $scheduler == slurm && $node -ne 0 ]]; then  # node 0 is this one
    start_stage "$name" srun --job-name="$name" --overlap --relative="$node" --nodes=1 --ntasks=1 \
      $(slurm_gpus "$gpus") "$@"
  elif [[ $scheduler == ray ]]; then
    start_stage "$name" "${ray_launch[@]}" run --group "$ray_group" --stage "$name" \
      --log "$logs/$name.log" --bundle "$node" --gpus "$gpus" -- "$@"
  else
    start_stage "$name" "$@"
  fi
}

# --- Slurm: stages on other nodes of the job through srun steps (--overlap:
# they share the job's resources); feeder, bridge and scorer stay on this node
# (the allocation's first) beside the rings. The trainer's rendezvous is on
# the first node (its ranks take it from SLURM_JOB_NODELIST) at this port.
slurm_master_port=$((29500 + RANDOM % 1000))
slurm_gpus() {  # GPUs a task asks for: none in a job without GPUs
  [[ ${SLURM_GPUS_ON_NODE:-0} -gt 0 && $1 -gt 0 ]] && echo "--gpus-per-task=$1" || true
}

# --- Ray: the launcher runs with Ray on its path (tools/setup.sh installs it
# apart from the pinned packages); one placement group per run folder.
# (`env` execs the launcher: the stage's pid is the launcher's, which passes
# signals on to the stage.)
ray_group=""
if [[ $scheduler == ray ]]; then
  ray_env="${MOERL_RAY_ENV:-$HOME/.cache/moerl/ray-env}"
  [[ -d "$ray_env/ray" ]] ||
    die "scheduler.type=ray: no Ray in $ray_env (MOERL_RAY_ENV); tools/setup.sh installs it"
  ray_launch=(env "PYTHONPATH=$ray_env${PYTHONPATH:+:$PYTHONPATH}" "$python" "$ray_launch_script")
  ray_group="moerl:$run_dir"
  # Rings live on this node: feeder, bridge and scorer run in bundle 0, pinned here.
  "${ray_launch[@]}" place --group "$ray_group" --nodes "$ray_nodes" --slots-per-node "$ray_slots_per_node" ||
    { ray_group=""; die "scheduler.type=ray: could not place the run on the Ray cluster (RAY_ADDRESS=${RAY_ADDRESS:-auto})"; }
fi

# --- the embedded default's data: synthetic GSM8K-format problems
synthesize() {  # file, seed, count
  [[ -s "$1" ]] && return 0
  "$synth" --level "$synthetic_level" --seed "$2" --count "$3" >"$1.tmp" && mv "$1.tmp" "$1"
}
if [[ $embedded -eq 1 ]]; then
  mkdir -p "$run_dir/data"
  synthesize "$run_dir/data/train.jsonl" 11 20000
  synthesize "$run_dir/data/sft.jsonl" 12 20000
  synthesize "$run_dir/data/test.jsonl" 13 200
fi

# --- SFT warm-up: the trainer in SFT mode in the sibling trial <trial>.sft;
# RL then starts from its newest weights. A finished warm-up is reused.
if [[ $sft_steps -gt 0 ]]; then
  sft_dir="$(dirname "$run_dir")/$trial_name.sft"
  if [[ ! -f "$sft_dir/.complete" ]]; then
    say "pipeline: SFT warm-up, $sft_steps steps (log: $logs/sft.log)"
    # One process: the trainer's SFT mode does not split data across ranks.
    start_stage_on sft 0 1 "$trainer" "${args[@]}" "${sft_extra[@]}"
    while kill -0 "${stage_pid[sft]}" 2>/dev/null; do
      [[ $stopping -eq 1 ]] && exit 130
      sleep 1
    done
    status=0; wait "${stage_pid[sft]}" || status=$?
    unset "stage_pid[sft]"
    [[ $status -eq 0 ]] || fail_stage sft "exited with status $status"
    touch "$sft_dir/.complete"
  fi
  sft_version=$(cat "$sft_dir/weights/LATEST") || die "SFT left no weights/LATEST in $sft_dir"
  args+=("++actor.path=$sft_dir/weights/v$sft_version" "++actor.init_from_scratch=false")
  say "pipeline: RL starts from $sft_dir/weights/v$sft_version"
  [[ "$output_mode" == quiet ]] || "$python" - "$sft_dir/stats.jsonl" <<'PY' >&2 || true
import json, sys
evals = [s for s in map(json.loads, open(sys.argv[1])) if "eval-rollout/reward" in s]
if evals:
    s = evals[-1]
    print("pipeline: SFT baseline (step {}): eval {:.3f} greedy {:.3f}".format(
        s["step"], s["eval-rollout/reward"], s["eval-rollout/greedy_accuracy"]))
PY
fi

# --- rings (acknowledged: a stage that dies loses nothing it had not finished)
for r in "$prompt_ring" "$trajectory_ring"; do
  "$ring" remove "$r" >/dev/null 2>&1 || true
  "$ring" create "$r" --capacity_bytes="$ring_capacity_bytes" --mode=ack --owner_pid=$$ >/dev/null ||
    die "could not create ring $r"
done

# --- the trainer first: it publishes the weights the servers start from
# (weights/LATEST: v0 of a fresh run; on a resume the version of the
# trainer's newest checkpoint, or v0 without one). A resume removes LATEST
# so that the trainer republishes the weights it continues from: the dead
# run's newer versions belong to steps the trainer will redo.
if [[ $resume -eq 1 ]]; then rm -f "$run_dir/weights/LATEST"; fi
start_trainer trainer "${args[@]}"
deadline=$((SECONDS + ${stage_timeout_s%.*}))
while [[ ! -s "$run_dir/weights/LATEST" ]]; do
  kill -0 "${stage_pid[trainer]}" 2>/dev/null || fail_stage trainer "exited before publishing weights"
  [[ $SECONDS -lt $deadline ]] || fail_stage trainer "published no weights within ${stage_timeout_s}s"
  [[ $stopping -eq 1 ]] && exit 130
  sleep 0.2
done

# --- inference servers (or the external ones named by rollout.server_addrs)
addresses=($external_servers)
server_node=($server_nodes)
for ((i = 0; i < n_servers; i++)); do
  rm -f "$run_dir/server.$i.address"
  mapfile -t extra < <(server_extra "$i")
  if [[ $scheduler == ray ]]; then  # reachable from the bridge's node
    start_stage_on "server.$i" "${server_node[$i]}" "$gpus_per_server" "$server" "${args[@]}" "${extra[@]}" \
      "++server.host={ray_node_ip}"
  elif [[ $scheduler == slurm ]]; then  # on its node of the allocation, on that node's first address
    start_stage "server.$i" srun --job-name="server.$i" --overlap --relative="${server_node[$i]}" --nodes=1 \
      --ntasks=1 $(slurm_gpus "$gpus_per_server") \
      bash -c 'exec "$@" "++server.host=$(hostname -I | cut -d" " -f1)"' server "$server" "${args[@]}" "${extra[@]}"
  else
    start_stage "server.$i" "$server" "${args[@]}" "${extra[@]}"
  fi
done
for ((i = 0; i < n_servers; i++)); do
  deadline=$((SECONDS + ${stage_timeout_s%.*}))
  while [[ ! -s "$run_dir/server.$i.address" ]]; do
    kill -0 "${stage_pid[server.$i]}" 2>/dev/null || fail_stage "server.$i" "exited before listening"
    [[ $SECONDS -lt $deadline ]] || fail_stage "server.$i" "did not start listening within ${stage_timeout_s}s"
    [[ $stopping -eq 1 ]] && exit 130
    sleep 0.2
  done
  address=$(cat "$run_dir/server.$i.address")
  addresses+=("${address#http://}")
done
server_list=$(IFS=,; echo "${addresses[*]}")

# --- the stages
# (under Ray in bundle 0, on this node, beside the rings they share)
start_stage_on feeder 0 0 "$feeder" "${args[@]}" "${feeder_extra[@]}"
start_stage_on bridge 0 0 "$bridge" "${args[@]}" "++rollout.server_addrs=$server_list" "${bridge_extra[@]}"
start_stage_on scorer 0 0 "$scorer" "${args[@]}" "${scorer_extra[@]}"
say "pipeline: run folder $run_dir; $n_servers server(s), $trainer_ranks trainer rank(s), logs in $logs${ray_group:+ (on Ray, placement group $ray_group)}"

# --- watch: progress from stats.jsonl, failures and hangs by stage name
stats="$run_dir/stats.jsonl"
seen_lines=0
[[ -f "$stats" ]] && seen_lines=$(wc -l <"$stats")
last_progress=$SECONDS
watch_start=$(date +%s)  # the ETA extrapolates the steps seen since then
watch_first_line=$seen_lines

print_new_stats() {  # prints the stats lines written since the last call
  [[ -f "$stats" ]] || return 1
  local lines
  lines=$(wc -l <"$stats")
  [[ $lines -gt $seen_lines ]] || return 1
  local n=$seen_lines line
  while IFS= read -r line; do
    n=$((n + 1))
    case "$output_mode" in
      json) echo "$line" ;;
      text)
        "$python" - "$line" "$total_steps" "$((n - watch_first_line))" \
          "$(($(date +%s) - watch_start))" <<'PY' || true
import json, sys
s = json.loads(sys.argv[1])
def g(k, f="{:.3f}"):
    v = s.get(k)
    return "-" if v is None else f.format(v)
total, done_here, seconds = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# ETA: the mean time of the steps this pipeline saw, times the steps left.
eta = "-"
if total.isdigit() and isinstance(s.get("step"), int) and done_here > 0:
    left = max(int(total) - s["step"] - 1, 0) * seconds / done_here
    eta = "{}m{:02d}s".format(int(left) // 60, int(left) % 60)
print("step {}/{} reward {} loss {} grad_norm {} eval {} greedy {} staleness {} tok/s {} eta {}".format(
    s.get("step", "?"), total, g("rollout/reward"), g("ppo_actor/update/actor_loss/avg"),
    g("ppo_actor/update/grad_norm"), g("eval-rollout/reward"),
    g("eval-rollout/greedy_accuracy"),
    g("ppo_actor/update/version_stats/sample_staleness_theta_avg", "{:.2f}"),
    g("timeperf/tokens_per_second", "{:.0f}"), eta), file=sys.stderr)
PY
        ;;
    esac
  done < <(tail -n +"$((seen_lines + 1))" "$stats" | head -n "$((lines - seen_lines))")
  seen_lines=$lines
}

declare -A exited=()  # stage name -> exit status, of the stages that ended
reap_exited() {  # moves ended stages from stage_pid to exited
  local name pid status again=1
  while [[ $again -eq 1 ]]; do
    again=0
    for name in "${!stage_pid[@]}"; do
      pid=${stage_pid[$name]}
      kill -0 "$pid" 2>/dev/null && continue
      status=0
      wait "$pid" || status=$?
      unset "stage_pid[$name]"
      exited[$name]=$status
      again=1
    done
    # Stages that end together (one killed, one seeing it) are judged together.
    if [[ $again -eq 1 ]]; then sleep 0.5; fi
  done
  return 0
}

# --- hangs, named. Each running stage's progress is read from what it leaves
# behind, and so is whether it has work that it is not doing:
#   stage      progress counter                          has work when
#   trainer    lines of stats.jsonl                      a batch file newer than its last step exists
#   scorer     trajectories taken + batch files          trajectories wait in the ring
#   server.<i> answered /health_generate probes          always (one probe at a time, every 5 s)
#   bridge     prompts taken + trajectories pushed       prompts wait in the ring
#   feeder     prompts pushed                            the prompt ring is empty
# A stage that has had work and made no progress for pipeline.stage_timeout_s
# hangs. Blame goes downstream first, in the order above: of the stages
# stalled for at least half the timeout, the first is named. A bridge held
# back by its staleness limit (max_head_offpolicyness) because the trainer
# stopped taking batches is so not blamed for the trainer, nor a bridge whose
# requests wait on a server that stopped answering.
liveness_order=(trainer scorer)
for ((i = 0; i < n_servers; i++)); do liveness_order+=("server.$i"); done
liveness_order+=(bridge feeder)
declare -A live_count=() live_since=() live_work=()  # stage -> counter, stall start, what waits
declare -A probe_start=() probe_ok=()  # server -> start of its last probe, answers so far
probe_every_s=5

ring_stats() {  # ring -> "pushed popped depth_messages" (zeros when it cannot be read)
  local json
  json=$("$ring" stat "$1" --json 2>/dev/null) || { echo "0 0 0"; return 0; }
  local out="" field value
  for field in pushed popped depth_messages; do
    value=${json#*\"$field\":}
    out+="${value%%[,\}]*} "
  done
  echo "$out"
}

probe_servers() {  # one /health_generate at a time per started server; counts the answers
  command -v curl >/dev/null || return 0
  local i name pid status address
  for ((i = 0; i < n_servers; i++)); do
    name="server.$i"
    pid=${probe_pid[$name]:-}
    if [[ -n "$pid" ]]; then
      kill -0 "$pid" 2>/dev/null && continue
      status=0; wait "$pid" || status=$?
      [[ $status -ne 0 ]] || probe_ok[$name]=$((${probe_ok[$name]:-0} + 1))
      probe_pid[$name]=""
    fi
    [[ $((SECONDS - ${probe_start[$name]:-0})) -ge $probe_every_s ]] || continue
    address=$(cat "$run_dir/server.$i.address" 2>/dev/null) || continue
    # The server waits up to 20 s for its own health generation.
    curl -sf -m 30 -o /dev/null "http://${address#http://}/health_generate" </dev/null &
    probe_pid[$name]=$!
    probe_start[$name]=$SECONDS
  done
}

stage_progress() {  # stage -> "counter work" (work: what waits on it, "" when nothing does)
  local p=($prompt_stats) t=($trajectory_stats)
  case "$1" in
    trainer)
      local steps=0 last=-1 newest=-1 line
      if [[ -f "$stats" ]]; then
        steps=$(wc -l <"$stats")
        line=$(tail -n 1 "$stats" | grep -oE '"step":[0-9]+' || true)
        [[ -z "$line" ]] || last=${line#*:}
      fi
      line=$(ls "$run_dir/batches" 2>/dev/null | grep -E '^[0-9]+\.rec$' | sort -n | tail -n 1 || true)
      [[ -z "$line" ]] || newest=$((10#${line%.rec}))
      if [[ $newest -gt $last ]]; then echo "$steps batch file batches/$line waits"; else echo "$steps"; fi ;;
    scorer)
      local batches
      batches=$(ls "$run_dir/batches" 2>/dev/null | grep -cE '^[0-9]+\.rec$' || true)
      if [[ ${t[2]} -gt 0 ]]; then echo "$((t[1] + batches)) ${t[2]} trajectories queued in ring $trajectory_ring"
      else echo "$((t[1] + batches))"; fi ;;
    server.*) echo "${probe_ok[$1]:-0} /health_generate unanswered" ;;
    bridge)
      if [[ ${p[2]} -gt 0 ]]; then echo "$((p[1] + t[0])) ${p[2]} prompts queued in ring $prompt_ring"
      else echo "$((p[1] + t[0]))"; fi ;;
    feeder)
      if [[ ${p[2]} -eq 0 ]]; then echo "${p[0]} ring $prompt_ring empty"; else echo "${p[0]}"; fi ;;
  esac
}

check_liveness() {  # names the hung stage and exits 1, if one hangs
  local timeout=${stage_timeout_s%.*} name progress count work stalled=0
  prompt_stats=$(ring_stats "$prompt_ring")
  trajectory_stats=$(ring_stats "$trajectory_ring")
  probe_servers
  for name in "${liveness_order[@]}"; do
    [[ -n "${stage_pid[$name]:-}" ]] || { unset "live_since[$name]"; continue; }
    progress=$(stage_progress "$name")
    count=${progress%% *}
    work=""; [[ "$progress" == *" "* ]] && work=${progress#* }
    if [[ -z "${live_since[$name]:-}" || "$count" != "${live_count[$name]}" || -z "$work" ]]; then
      live_since[$name]=$SECONDS
    fi
    live_count[$name]=$count
    live_work[$name]=$work
    [[ $((SECONDS - live_since[$name])) -gt $timeout ]] && stalled=1
  done
  [[ $stalled -eq 1 ]] || return 0
  for name in "${liveness_order[@]}"; do
    [[ -n "${live_since[$name]:-}" ]] || continue
    if [[ $((2 * (SECONDS - live_since[$name]))) -ge $timeout ]]; then
      fail_stage "$name" "hangs: no progress for $((SECONDS - live_since[$name]))s (pipeline.stage_timeout_s=${stage_timeout_s}) while ${live_work[$name]}"
    fi
  done
}

while :; do
  if [[ $stopping -eq 1 ]]; then
    say "pipeline: stopping every stage"
    exit 130
  fi
  reap_exited
  if [[ -n "${exited[trainer]:-}" && ${exited[trainer]} -eq 0 ]]; then
    print_new_stats || true
    say "pipeline: trainer finished; run folder $run_dir"
    if [[ $write_report == 1 ]]; then
      printf '%s\n' "$plan" >"$run_dir/plan.txt"
      baseline=()
      [[ -n "${sft_dir:-}" && -f "$sft_dir/stats.jsonl" ]] && baseline=(--baseline "$sft_dir/stats.jsonl")
      "$python" "$report_script" "$run_dir" --plan "$run_dir/plan.txt" "${baseline[@]}" >/dev/null ||
        die "could not write $run_dir/report (see above)"
      say "pipeline: report in $run_dir/report/index.md"
    fi
    exit 0
  fi
  # A stage that failed is named before one that only ended early because of
  # it (a scorer sees the end of its ring when the bridge dies).
  for name in "${!exited[@]}"; do
    if [[ ${exited[$name]} -ne 0 ]]; then fail_stage "$name" "exited with status ${exited[$name]}"; fi
  done
  for name in "${!exited[@]}"; do
    [[ $name == feeder ]] && continue  # the feeder ends when the data does
    fail_stage "$name" "ended before the trainer (status 0)"
  done
  if print_new_stats; then last_progress=$SECONDS; fi
  check_liveness
  if [[ $((SECONDS - last_progress)) -gt $((2 * ${stage_timeout_s%.*})) ]]; then
    # No stage had work it was not doing, yet nothing trained: say what each did last.
    echo "pipeline: no training step for $((2 * ${stage_timeout_s%.*}))s and no stage hung; the stages' last log lines:" >&2
    for name in "${!stage_pid[@]}"; do echo "--- $name" >&2; tail -n 3 "$logs/$name.log" >&2 || true; done
    exit 1
  fi
  sleep 1
done

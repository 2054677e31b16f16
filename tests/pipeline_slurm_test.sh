#!/usr/bin/env bash
# scheduler.type=slurm, as the batch step of a job on the allocation's first
# node, with tests/testdata/fake_slurm/srun standing in for Slurm's srun
# (this machine has no Slurm): the embedded default with small settings.
# Checks: outside a job the pipeline refuses, naming what to do; inside, the
# trainer's two ranks start as one srun step (--ntasks=2, ranks from
# SLURM_PROCID, no torchrun) and the server as an srun step on its node that
# binds the node's address; exit 0 with every step trained; no stage process,
# srun or ring left.
set -euo pipefail
pipeline="${TEST_SRCDIR}/moerl/tools/pipeline/pipeline"
fake_bin="${TEST_SRCDIR}/moerl/tests/testdata/fake_slurm"
root="${TEST_TMPDIR}/runs"
fail() { echo "FAIL: $*" >&2; exit 1; }
small=(cluster.fileroot="$root" total_train_steps=2 gconfig.n_samples=2 train_dataset.batch_size=2
  actor.ppo_n_minibatches=1 gconfig.max_new_tokens=12 pipeline.stage_timeout_s=240 evaluator.freq_steps=null
  pipeline.sft_steps=0 scheduler.type=slurm cluster.n_gpus_per_node=3)

if "$pipeline" "${small[@]}" trial_name=outside >"$TEST_TMPDIR/outside.out" 2>&1; then
  fail "scheduler.type=slurm outside a Slurm job was accepted"
fi
grep -q "run the pipeline inside a Slurm job" "$TEST_TMPDIR/outside.out" ||
  { cat "$TEST_TMPDIR/outside.out" >&2; fail "the refusal does not say what to do"; }

export PATH="$fake_bin:$PATH" FAKE_SRUN_LOG="$TEST_TMPDIR/srun.log"
export SLURM_JOB_ID=4242 SLURMD_NODENAME=localhost SLURM_JOB_NODELIST=localhost
"$pipeline" "${small[@]}" trial_name=job >"$TEST_TMPDIR/job.out" 2>&1 ||
  { cat "$TEST_TMPDIR/job.out" >&2; tail -n 20 "$root"/moerl-demo/job/logs/*.log >&2 || true; fail "the run exited non-zero"; }
run="$root/moerl-demo/job"
[[ $(wc -l <"$run/stats.jsonl") -eq 2 ]] || fail "stats.jsonl has $(wc -l <"$run/stats.jsonl") lines, want 2"
[[ $(cat "$run/weights/LATEST") == 2 ]] || fail "weights/LATEST is '$(cat "$run/weights/LATEST")', want 2"
grep -q -- "--job-name=trainer .*--ntasks=2 .*bazel-out.*trainer/trainer" "$FAKE_SRUN_LOG" ||
  { cat "$FAKE_SRUN_LOG" >&2; fail "the trainer ranks were not one srun step of 2 tasks"; }
grep -q -- "--job-name=server.0 .*--relative=0 " "$FAKE_SRUN_LOG" ||
  { cat "$FAKE_SRUN_LOG" >&2; fail "the server was not an srun step on node 0"; }
if grep -q "torch.distributed.run" "$run/logs/trainer.log"; then fail "torchrun started under Slurm"; fi
address=$(cat "$run/server.0.address")
[[ $address != *127.0.0.1* ]] || fail "the server bound 127.0.0.1 ($address), not the node's address"
[[ -z "$(pgrep -f -- "cluster.fileroot=$root" || true)" ]] || fail "stage processes left: $(pgrep -af -- "cluster.fileroot=$root")"
[[ $(ls /dev/shm 2>/dev/null | grep -c "moerl-demo\.job\." || true) -eq 0 ]] || fail "rings left in /dev/shm"
echo "PASS: $(grep -c . "$FAKE_SRUN_LOG") srun steps; server at $address"

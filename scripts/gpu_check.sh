#!/usr/bin/env bash
# The GPU check of the threestudio path: what CI's CPU cannot run. Needs a CUDA GPU; never part of CI.
#
#   scripts/gpu_check.sh /path/to/threestudio [WORK_DIR]
#
# In this project's environment plus a threestudio 0.2.x checkout (never written into), from a fresh
# WORK_DIR (default: a new temporary folder) whose custom/threestudio-carv links to this extension:
#   1. reports which CUDA-only pieces work here: nerfacc's CUDA kernels (built on first use: needs nvcc),
#      tinycudann, nvdiffrast (none is installed by this script: they are not on PyPI);
#   2. launch.py --train of carv-toy-teacher as shipped (carv-batched-volume-renderer), then --export of
#      its mesh (mesh-exporter: nvdiffrast; marching cubes on the CPU, no UV atlas);
#   3. the same --train on threestudio's own occupancy-grid nerf-volume-renderer (nerfacc CUDA);
#   4. the Magic3D refine stage (carv-magic3d-refine-sd.yaml with the toy teacher) from run 2, when
#      nvdiffrast, tinycudann and threestudio's load/tets/ (give TETS_DIR=...; the snapshot has none) are here;
#   5. the step time of R = 1, K = 16 against R = 4, K = 1 (scripts/sweep_rk.py, same run length, one process
#      per configuration, phases timed by carv-dreamfusion-system), printed as a ratio;
#   6. scripts/bench_guidance.py on CUDA: the measured cost curve against the step times, and auto's (R, K) there.
# Every part runs under its own time limit (the whole under 8 minutes) and a failure does not stop the
# others; the summary at the end says what ran, what failed and what could not be tried.
set -uo pipefail

[ $# -ge 1 ] || { echo "usage: $0 /path/to/threestudio [WORK_DIR]" >&2; exit 2; }
THREESTUDIO=$(cd "$1" && pwd) || { echo "no such folder: $1" >&2; exit 2; }
[ -f "$THREESTUDIO/launch.py" ] || { echo "$THREESTUDIO has no launch.py (is it a threestudio checkout?)" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${2:-$(mktemp -d -t carv-gpu-check.XXXXXX)}
PYTHON=${PYTHON:-python}
mkdir -p "$WORK/custom" && ln -sfn "$REPO/custom/threestudio-carv" "$WORK/custom/threestudio-carv"
cd "$WORK" || exit 2
export PYTHONPATH="$THREESTUDIO:$REPO/custom/threestudio-carv${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1

declare -a SUMMARY
note() { SUMMARY+=("$1"); echo "== $1"; }
# step NAME SECONDS COMMAND...: run with a time limit, log to WORK/NAME.log, note the outcome
step() {
  local name=$1 limit=$2; shift 2
  local started=$SECONDS rc=0
  timeout "$limit" "$@" >"$WORK/$name.log" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    note "$name: ok ($((SECONDS - started)) s)"; return 0
  fi
  note "$name: FAILED (exit $rc$([ "$rc" = 124 ] && echo ': time limit'), $((SECONDS - started)) s; last lines of $WORK/$name.log below)"
  tail -n 15 "$WORK/$name.log" | sed 's/^/    /'; return 1
}

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { echo "no CUDA device visible to torch: nothing to check here (this script is for a GPU machine)" >&2; exit 2; }
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))"

# 1. the CUDA-only pieces
step nerfacc-cuda 240 "$PYTHON" -c "
import torch, nerfacc
grid = nerfacc.OccGridEstimator(roi_aabb=[-1, -1, -1, 1, 1, 1], resolution=16).cuda()
rays_o, rays_d = torch.zeros(8, 3, device='cuda'), torch.nn.functional.normalize(torch.randn(8, 3, device='cuda'), dim=-1)
ray_indices, t_starts, t_ends = grid.sampling(rays_o, rays_d, render_step_size=0.05)
print('nerfacc', nerfacc.__version__, 'CUDA sampling:', ray_indices.numel(), 'samples')" && HAVE_NERFACC=1 || HAVE_NERFACC=0
step tinycudann 60 "$PYTHON" -c "import tinycudann; print('tinycudann importable')" && HAVE_TCNN=1 || HAVE_TCNN=0
step nvdiffrast 120 "$PYTHON" -c "
import nvdiffrast.torch as dr
dr.RasterizeCudaContext(); print('nvdiffrast CUDA context')" && HAVE_NVDIFFRAST=1 || HAVE_NVDIFFRAST=0

LAUNCH=("$PYTHON" "$THREESTUDIO/launch.py")
TOY="$REPO/configs/carv-toy-teacher.yaml"
COMMON=(system.prompt_processor.prompt="a red mug" use_timestamp=false data.n_test_views=30)

# 2. --train, then --export, with the shipped toy config
RUN="$WORK/outputs/carv-toy-teacher/toy"
if step train-toy 150 "${LAUNCH[@]}" --config "$TOY" --train --gpu 0 "${COMMON[@]}" tag=toy trainer.max_steps=300; then
  if [ "$HAVE_NVDIFFRAST" = 1 ]; then
    step export-toy 120 "${LAUNCH[@]}" --config "$RUN/configs/parsed.yaml" --export --gpu 0 resume="$RUN/ckpts/last.ckpt" \
      system.exporter_type=mesh-exporter system.exporter.save_uv=false system.exporter.fmt=obj \
      system.geometry.isosurface_method=mc-cpu system.geometry.isosurface_resolution=64 \
      && ls -l "$RUN"/save/it*-export/model.obj
  else
    note "export-toy: not tried (nvdiffrast is not usable here)"
  fi
fi

# 3. threestudio's occupancy-grid NeRF renderer
if [ "$HAVE_NERFACC" = 1 ]; then
  step train-occgrid 150 "${LAUNCH[@]}" --config "$TOY" --train --gpu 0 "${COMMON[@]}" tag=occgrid trainer.max_steps=300 \
    system.renderer_type=nerf-volume-renderer "system.renderer={radius: 1.0, num_samples_per_ray: 256}"
else
  note "train-occgrid: not tried (nerfacc's CUDA kernels are not usable here)"
fi

# 4. the Magic3D mesh refinement stage
if [ "$HAVE_NVDIFFRAST" = 1 ] && [ "$HAVE_TCNN" = 1 ] && [ -n "${TETS_DIR:-}" ] && [ -f "$RUN/ckpts/last.ckpt" ]; then
  mkdir -p "$WORK/load" && ln -sfn "$(cd "$TETS_DIR" && pwd)" "$WORK/load/tets"
  step refine-toy 150 "${LAUNCH[@]}" --config "$REPO/configs/carv-magic3d-refine-sd.yaml" --train --gpu 0 \
    system.prompt_processor.prompt="a red mug" use_timestamp=false tag=refine trainer.max_steps=100 \
    system.geometry_convert_from="$RUN/ckpts/last.ckpt" data.width=64 data.height=64 data.n_test_views=30 \
    system.prompt_processor.pretrained_model_name_or_path="$REPO/load/toy-teacher" \
    system.guidance.pretrained_model_name_or_path="$REPO/load/toy-teacher" \
    system.guidance.half_precision_weights=false system.guidance.native_resolution=0 system.prompt_processor.spawn=false
else
  note "refine-toy: not tried (needs nvdiffrast=$HAVE_NVDIFFRAST, tinycudann=$HAVE_TCNN, TETS_DIR=${TETS_DIR:-unset} with <res>_tets.npz, and run 2)"
fi

# 5. step time of R = 1, K = 16 against R = 4, K = 1 (equal cost at a = 4 b), one sweep
printf 'a red mug\n' >"$WORK/prompt.txt"
if step sweep 150 "$PYTHON" "$REPO/scripts/sweep_rk.py" --config "$TOY" --threestudio-root "$THREESTUDIO" --workdir "$WORK" \
  --prompts "$WORK/prompt.txt" --a 4 --b 1 --k 1 16 --out "$WORK/sweep" trainer.max_steps=200 data.n_test_views=4; then
  "$PYTHON" - "$WORK/sweep/sweep.csv" <<'EOF'
import csv, sys
rows = {(int(r["R"]), int(r["K"])): float(r["mean_step_seconds"]) for r in csv.DictReader(open(sys.argv[1]))}
carv, baseline = rows[(1, 16)], rows[(4, 1)]
print(f"step time: R=1 K=16 {carv * 1e3:.1f} ms, R=4 K=1 {baseline * 1e3:.1f} ms, ratio (R1K16 / R4K1) {carv / baseline:.2f}")
EOF
fi

# 6. the measured cost model on this GPU (issue 13): the teacher curve c(n) up to the memory limit and the step time of
#    every (R, K) of the grid against A(R) + c(R K) and R (a + K b), for the mid-size teacher and SD 2.1-base at 512 px
#    (random weights, fp16), and what auto would choose there at the variance ratios the embedded teacher showed
#    through launch.py (sigma_w^2 / sigma_b^2 = 67 at step 0, 1.45 at step 100, 1.1 at step 200)
if step bench-guidance 240 "$PYTHON" "$REPO/scripts/bench_guidance.py" --skip-mid --repeats 3 --variance-ratio 67 1.45 1.1; then
  grep -E "^==|largest|^auto" "$WORK/bench-guidance.log" | sed 's/^/    /'
fi

echo; echo "== summary ($SECONDS s; logs and runs in $WORK)"; printf '  %s\n' "${SUMMARY[@]}"

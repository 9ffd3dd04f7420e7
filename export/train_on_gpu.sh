#!/usr/bin/env bash
# Teacher then distilled student on a lent GPU machine (how the default model was trained).
# Needs the packed splits (python -m export.pack) in $PACK; writes slim checkpoints and logs
# to $OUT. Minutes per model: $1 (teacher) and $2 (student).
set -euo pipefail
export PYTHONUNBUFFERED=1
PACK=${PACK:-.devcarry}
OUT=${OUT:-/tmp/aim-train}
T_MIN=${1:-3}
S_MIN=${2:-3.5}
mkdir -p "$OUT"
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m export.train --config export/configs/teacher_gpu.json --data "$PACK/train.npz" \
  --dev "$PACK/dev.npz" --out /tmp/aim-teacher --name aim-teacher --minutes "$T_MIN" \
  --device cuda --threads 8 --ckpt-every 300 --slim "$OUT/teacher.pt" 2>&1 \
  | tr '\r' '\n' | grep -v "step/s" > "$OUT/teacher.log" || { tail -30 "$OUT/teacher.log"; exit 1; }
tail -3 "$OUT/teacher.log"
cp /tmp/aim-teacher/metrics.jsonl "$OUT/teacher_metrics.jsonl"
python3 -m export.train --config export/configs/student_gpu.json --data "$PACK/train.npz" \
  --dev "$PACK/dev.npz" --out /tmp/aim-student --name aim-student --minutes "$S_MIN" \
  --teacher /tmp/aim-teacher/best.pt --device cuda --threads 8 --ckpt-every 300 \
  --slim "$OUT/student.pt" 2>&1 \
  | tr '\r' '\n' | grep -v "step/s" > "$OUT/student.log" || { tail -30 "$OUT/student.log"; exit 1; }
tail -3 "$OUT/student.log"
cp /tmp/aim-student/metrics.jsonl "$OUT/student_metrics.jsonl"
ls -la "$OUT"

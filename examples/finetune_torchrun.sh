#!/usr/bin/env bash
# Fine-tune a converted model on several GPUs (or CPU processes) with torchrun.
#
#   bash examples/finetune_torchrun.sh converted.safetensors /data/imagenet runs/ft 4
#
# DATA holds train/ and val/ ImageFolder trees (class folders; WordNet-id folder
# names map onto a 1000-way ImageNet head). `poolswap finetune` runs unchanged
# under torchrun: DistributedDataParallel, sharded data, rank 0 writes the run
# directory (args.yaml, summary.csv, last/best.safetensors, resume.pt).
set -euo pipefail

CONVERTED=${1:?usage: $0 CONVERTED.safetensors DATA RUN_DIR [NPROC]}
DATA=${2:?usage: $0 CONVERTED.safetensors DATA RUN_DIR [NPROC]}
RUN_DIR=${3:?usage: $0 CONVERTED.safetensors DATA RUN_DIR [NPROC]}
NPROC=${4:-$(python -c "import torch; print(max(1, torch.cuda.device_count()))")}

# --batch-size is per process; --calibrate chooses each site's beta first (on 8 batches).
torchrun --standalone --nproc_per_node="$NPROC" -m poolswap.cli finetune "$CONVERTED" \
    --data "$DATA" -o "$RUN_DIR" \
    --epochs 3 --batch-size 64 --optimizer sgd --lr 0.01 --warmup-steps 200 \
    --calibrate 8 --alpha 0.5 --temperature 2 --amp bf16 --checkpoint-every 500

# Interrupted? The same run continues exactly where it stopped:
#   torchrun --standalone --nproc_per_node="$NPROC" -m poolswap.cli finetune --resume "$RUN_DIR"
# Then export the best checkpoint:
#   poolswap export "$RUN_DIR/best.safetensors" -o model.onnx --validate

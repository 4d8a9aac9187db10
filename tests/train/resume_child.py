"""Child process of the kill-and-resume test: ``python resume_child.py CONVERTED DATA RUN_DIR [--resume] [--block]``.

With ``--block`` it stops fetching data (and waits to be killed) once the run's
resume state says it is past step 2 of the second epoch, after printing the
line ``BLOCKED_MARKER``: the parent kills it with SIGKILL then, mid-epoch,
between two checkpoints.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import torch
from torch.utils.data import Dataset

from tests.train import helpers
import poolswap
from poolswap.train import FinetuneConfig, finetune
from poolswap.data.datasets import build_transform, image_dataset, resolve_data_config

BLOCKED_MARKER = "POOLSWAP_TEST_BLOCKED"

CONFIG = FinetuneConfig(epochs=3, batch_size=4, lr=0.05, beta_lr=0.1, checkpoint_every=2, calibrate=1, seed=7,
                        warmup_steps=2, data_config=helpers.DATA_CONFIG, hflip=True)


class BlockPastCheckpoint(Dataset):
    """Passes items through until RUN_DIR/resume.pt says (epoch 1, step >= 2); then blocks forever."""

    def __init__(self, dataset, run_dir: Path) -> None:
        self.dataset, self.run_dir = dataset, run_dir
        self.classes = dataset.classes

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        state_file = self.run_dir / "resume.pt"
        if state_file.is_file():
            state = torch.load(state_file, weights_only=True)
            if state["epoch"] == 1 and state["step"] >= 2:
                print(f"{BLOCKED_MARKER} {state['epoch']} {state['step']}", flush=True)
                threading.Event().wait()  # blocks until SIGKILL
        return self.dataset[index]


def main(argv) -> int:
    converted, data, run_dir = Path(argv[0]), Path(argv[1]), Path(argv[2])
    torch.set_num_threads(1)
    model = poolswap.load(converted, trust_module="tests.train.helpers")
    transform = build_transform(resolve_data_config(overrides=helpers.DATA_CONFIG), train=True, hflip=True)
    train = image_dataset(data / "train", transform)
    if "--block" in argv:
        train = BlockPastCheckpoint(train, run_dir)
    finetune(model, train_data=train, config=CONFIG, run_dir=run_dir, resume="--resume" in argv, progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

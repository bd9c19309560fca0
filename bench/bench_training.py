"""Training throughput per setting on this CPU: which Keras set-up trains a family fastest.

    python bench/bench_training.py [--model compact] [--steps 30] [--configs torch,float32,eager,last ...]

Each configuration runs in a fresh subprocess (Keras reads its backend, dtype policy and image
format once), trains `steps` batches of 64 random faces after 5 warm-up steps, and prints one
Markdown row: faces per second and minutes per Training epoch (25,837 faces with the holdout out).
Configurations are backend (torch | jax), precision (float32 | mixed_bfloat16), execution (eager |
compiled: Keras's jit_compile, torch.compile on torch, XLA on JAX; JAX has no eager training
step in Keras, so `jax,...,eager` is the same as compiled) and image layout (last: NHWC, Keras's
default and what ferkit's models use; first: NCHW, torch's native layout). A backend that is not
installed prints a `failed` row, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

EPOCH_FACES = 25_837
DEFAULT_CONFIGS = ["torch,float32,eager,last", "torch,mixed_bfloat16,eager,last", "torch,float32,eager,first",
                   "torch,mixed_bfloat16,eager,first", "torch,mixed_bfloat16,compiled,last",
                   "jax,float32,compiled,last", "jax,mixed_bfloat16,compiled,last"]


def measure(backend: str, precision: str, execution: str, layout: str, model_name: str, steps: int) -> dict:
    os.environ["KERAS_BACKEND"] = backend  # before Keras is imported: it reads the backend once
    os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
    import keras
    import numpy as np

    keras.config.set_dtype_policy(precision)
    keras.config.set_image_data_format("channels_last" if layout == "last" else "channels_first")
    from ferkit.models import create_model

    shape = (48, 48, 1) if layout == "last" else (1, 48, 48)
    model = create_model(model_name, input_shape=shape)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy",
                  jit_compile=execution == "compiled")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, *shape)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 7, 64), 7)
    for _ in range(5):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    faces_per_s = steps * 64 / seconds
    return {"config": f"{backend},{precision},{execution},{layout}", "faces_per_s": round(faces_per_s, 1),
            "epoch_min": round(EPOCH_FACES / faces_per_s / 60, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="compact")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS, help="backend,precision,execution,layout")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one.split(","), args.model, args.steps)))
        return
    print(f"`{args.model}`, batch 64, {args.steps} steps after 5 warm-up, load average {os.getloadavg()[0]:.1f}")
    print("| backend, precision, execution, layout | faces/s | min per epoch |")
    print("|---|---|---|")
    for config in args.configs:
        run = subprocess.run([sys.executable, __file__, "--model", args.model, "--steps", str(args.steps),
                              "--one", config], capture_output=True, text=True)
        if run.returncode:
            reason = (run.stderr.strip().splitlines() or ["failed"])[-1][:100]
            print(f"| {config} | failed: {reason} | |", flush=True)
            continue
        row = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"| {row['config']} | {row['faces_per_s']} | {row['epoch_min']} |", flush=True)


if __name__ == "__main__":
    main()

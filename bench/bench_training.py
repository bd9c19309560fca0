"""Training throughput per setting on this CPU (or a lent GPU): which Keras set-up trains a family fastest.

    python bench/bench_training.py [--model compact] [--steps 30] [--configs torch,float32,eager,last ...]
        [--batch-size 64] [--ema 0.999] [--cudnn-benchmark] [--timeout 120]

Each configuration runs in a fresh subprocess (Keras reads its backend, dtype policy and image
format once), trains `steps` batches of random faces (64 unless --batch-size) after 5 warm-up
steps, and prints one Markdown row: faces per second, minutes per Training epoch (25,837 faces
with the holdout out) and milliseconds per step.
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


def measure(backend: str, precision: str, execution: str, layout: str, model_name: str, steps: int,
            batch: int = 64, ema: float = 0.0, cudnn_benchmark: bool = False) -> dict:
    os.environ["KERAS_BACKEND"] = backend  # before Keras is imported: it reads the backend once
    os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
    import keras
    import numpy as np

    if cudnn_benchmark and backend == "torch":  # let cuDNN time its algorithms once per shape (GPU only)
        import torch
        torch.backends.cudnn.benchmark = True
    keras.config.set_dtype_policy(precision)
    keras.config.set_image_data_format("channels_last" if layout == "last" else "channels_first")
    from ferkit.models import create_model

    shape = (48, 48, 1) if layout == "last" else (1, 48, 48)
    model = create_model(model_name, input_shape=shape)
    ema_args = {"use_ema": True, "ema_momentum": ema} if ema else {}
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, **ema_args), loss="categorical_crossentropy",
                  jit_compile=execution == "compiled")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, *shape)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 7, batch), 7)
    for _ in range(5):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    faces_per_s = steps * batch / seconds
    return {"config": f"{backend},{precision},{execution},{layout}", "faces_per_s": round(faces_per_s, 1),
            "epoch_min": round(EPOCH_FACES / faces_per_s / 60, 2), "ms_per_step": round(1000 * seconds / steps, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="compact")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS, help="backend,precision,execution,layout")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--ema", type=float, default=0.0, help="optimizer EMA momentum (0: none), as ferkit train --ema")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark (GPU)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per configuration")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one.split(","), args.model, args.steps, args.batch_size, args.ema,
                                 args.cudnn_benchmark)))
        return
    extras = "".join([f", EMA {args.ema:g}"] * bool(args.ema) + [", cudnn.benchmark"] * args.cudnn_benchmark)
    print(f"`{args.model}`, batch {args.batch_size}, {args.steps} steps after 5 warm-up{extras}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| backend, precision, execution, layout | faces/s | min per epoch | ms per step |")
    print("|---|---|---|---|")
    for config in args.configs:
        command = [sys.executable, __file__, "--model", args.model, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--ema", str(args.ema), "--one", config]
        try:
            run = subprocess.run(command + ["--cudnn-benchmark"] * args.cudnn_benchmark, capture_output=True,
                                 text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"| {config} | failed: over {args.timeout:g} s (warm-up included) | | |", flush=True)
            continue
        if run.returncode:
            reason = (run.stderr.strip().splitlines() or ["failed"])[-1][:100]
            print(f"| {config} | failed: {reason} | | |", flush=True)
            continue
        row = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"| {row['config']} | {row['faces_per_s']} | {row['epoch_min']} | {row['ms_per_step']} |", flush=True)


if __name__ == "__main__":
    main()

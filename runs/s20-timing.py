"""Session 20: batch-1 time of int8 graphs, alternating rounds (median of 200 calls each)."""
import sys, time
import numpy as np
import onnxruntime as ort

paths = sys.argv[1:]
sessions = []
for p in paths:
    o = ort.SessionOptions(); o.intra_op_num_threads = 2
    s = ort.InferenceSession(p, o, providers=["CPUExecutionProvider"]); sessions.append((p, s, s.get_inputs()[0].name))
x = np.random.default_rng(0).uniform(0, 255, (1, 48, 48, 1)).astype(np.float32)
results = {p: [] for p in paths}
for r in range(5):
    for p, s, n in sessions:
        for _ in range(20): s.run(None, {n: x})
        t = []
        for _ in range(200):
            a = time.perf_counter(); s.run(None, {n: x}); t.append(time.perf_counter() - a)
        results[p].append(np.median(t) * 1000)
for p in paths:
    print(f"{p}: {np.median(results[p]):.2f} ms (rounds {' '.join(f'{v:.2f}' for v in results[p])})")

# CPU time per run (time.process_time: this process's user+sys, all threads) of several models,
# interleaved, ORT level all. On a loaded machine wall time measures the scheduler; CPU time with
# spinning off measures the work. argv: threads batch rounds model...
import sys, time, numpy as np, onnxruntime as ort
threads, B, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
models = sys.argv[4:]
S = 128
rng = np.random.default_rng(42)
ss = []
for m in models:
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(m, so, providers=["CPUExecutionProvider"])
    ss.append(s)
def feeds(s):
    f = {}
    for i in s.get_inputs():
        dt = np.int64 if "int64" in i.type else np.int32
        if "mask" in i.name: f[i.name] = np.ones((B, S), dt)
        elif "type" in i.name or "segment" in i.name: f[i.name] = np.zeros((B, S), dt)
        else: f[i.name] = ((np.arange(B * S).reshape(B, S) * 7919) % 1000 + 1).astype(dt)
    return f
fs = [feeds(s) for s in ss]
outs = [s.run(None, f)[0] for s, f in zip(ss, fs)]
for m, o in zip(models, outs): print(m, "max |diff| vs first:", float(np.abs(o - outs[0]).max()))
cpu = [[] for _ in ss]; wall = [[] for _ in ss]
for r in range(rounds):
    for k, (s, f) in enumerate(zip(ss, fs)):
        c0 = time.process_time(); w0 = time.perf_counter()
        s.run(None, f)
        cpu[k].append((time.process_time() - c0) * 1e3); wall[k].append((time.perf_counter() - w0) * 1e3)
c0m, c0n = np.median(cpu[0]), np.min(cpu[0]); w0m, w0n = np.median(wall[0]), np.min(wall[0])
print(f"threads {threads} B{B} rounds {rounds} (ratios to the first model)")
for k, m in enumerate(models):
    print(f"{m:22s} cpu p50 {np.median(cpu[k]):8.2f} min {np.min(cpu[k]):8.2f} ratio p50 {np.median(cpu[k])/c0m:.3f} min {np.min(cpu[k])/c0n:.3f} | wall p50 {np.median(wall[k]):8.2f} min {np.min(wall[k]):8.2f} ratio p50 {np.median(wall[k])/w0m:.3f} min {np.min(wall[k])/w0n:.3f}")

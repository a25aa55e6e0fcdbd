# One residual site of BERT-base, [B, 128, 768], in each form ORT might run (bench/ort132_findings.md):
#   residual_micro.py threads batch [rounds]   (bench/venv python: its onnxruntime is 1.32)
import sys, time, numpy as np, onnxruntime as ort
from onnx import helper as h, TensorProto as T, numpy_helper as nh
H = 768
def model(kind):
    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.standard_normal(H).astype(np.float32), n) for n in ("gamma", "beta", "bias")]
    x = h.make_tensor_value_info("x", T.FLOAT, ["b", "s", H]); r = h.make_tensor_value_info("r", T.FLOAT, ["b", "s", H])
    y = h.make_tensor_value_info("y", T.FLOAT, ["b", "s", H])
    ln = h.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)
    if kind == "addln":
        nodes = [h.make_node("Add", ["bias", "x"], ["xb"]), h.make_node("Add", ["xb", "r"], ["s"]), ln]
    elif kind == "sum3":
        nodes = [h.make_node("Sum", ["x", "bias", "r"], ["s"]), ln]
    elif kind == "add_sum2":
        nodes = [h.make_node("Add", ["bias", "x"], ["xb"]), h.make_node("Sum", ["xb", "r"], ["s"]), ln]
    elif kind == "skipbias":
        nodes = [h.make_node("SkipLayerNormalization", ["x", "r", "gamma", "beta", "bias"], ["y"], domain="com.microsoft", epsilon=1e-12)]
    g = h.make_graph(nodes, kind, [x, r], [y], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("com.microsoft", 1)], ir_version=8).SerializeToString()
threads = int(sys.argv[1]); B = int(sys.argv[2]); reps = int(sys.argv[3]) if len(sys.argv) > 3 else 40
L = ort.GraphOptimizationLevel
def sess(b, level):
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.graph_optimization_level = level
    # (optimized_model_filepath was used once to confirm addln_all becomes SkipLayerNormalization)
    return ort.InferenceSession(b, so, providers=["CPUExecutionProvider"])
ss = {"addln_basic": sess(model("addln"), L.ORT_ENABLE_BASIC), "addln_all": sess(model("addln"), L.ORT_ENABLE_ALL),
      "sum3_all": sess(model("sum3"), L.ORT_ENABLE_ALL), "add_sum2_all": sess(model("add_sum2"), L.ORT_ENABLE_ALL),
      "skipbias": sess(model("skipbias"), L.ORT_ENABLE_ALL)}
feeds = {"x": np.random.rand(B, 128, H).astype(np.float32), "r": np.random.rand(B, 128, H).astype(np.float32)}
ref = ss["addln_basic"].run(None, feeds)[0]
for k, s in ss.items(): assert np.allclose(s.run(None, feeds)[0], ref, atol=1e-4), k
inner = 50 if B == 1 else 10
best = {k: 1e9 for k in ss}; meds = {k: [] for k in ss}
for rep in range(reps):
    for k, s in ss.items():
        t = time.perf_counter()
        for _ in range(inner): s.run(None, feeds)
        dt = (time.perf_counter() - t) / inner * 1e3
        best[k] = min(best[k], dt); meds[k].append(dt)
print(f"B{B} threads {threads}: " + "; ".join(f"{k} min {best[k]:.3f} p50 {np.median(meds[k]):.3f}" for k in ss))

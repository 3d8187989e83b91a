"""Benchmark of a full study analysis: seconds (cold and warm, per stage), peak memory, parameters, FLOPs.

Each configuration (device x CPU threads) runs in its own fresh process, so
"cold" really is the first analysis after loading the weights and the peak
resident memory (``ru_maxrss``) belongs to that configuration alone.

    .venv/bin/python benchmarks/bench_analyze.py                  # shipped weights, CPU 1 and 2 threads, CUDA if present
    .venv/bin/python benchmarks/bench_analyze.py --untrained      # default-size untrained models (no weights needed)
    .venv/bin/python benchmarks/bench_analyze.py --device cuda    # runs unchanged on a GPU machine

Writes JSON (``--out``, default ``benchmarks/results/bench_analyze.json``) and
prints a table. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core_model.io.jsonsafe import dumps  # noqa: E402


def _make_untrained(tmp: Path) -> tuple[Path, Path]:
    import torch

    from core_model.models.checkpoint import save_checkpoint
    from core_model.models.registry import create_model

    torch.manual_seed(0)
    paths = []
    for name in ("nafv_seg", "nafv_cls"):
        w = tmp / f"{name}_untrained.safetensors"
        save_checkpoint(create_model(name), w, {"architecture": {"name": name, "config": {}},
                                                "trained_on": "nothing: untrained, for benchmarking only"})
        paths.append(w)
    return paths[0], paths[1]


def _model_costs(analyzer, study) -> dict:
    """Parameters and FLOPs (FlopCounterMode: matmul/conv; 1 multiply-add = 2 FLOPs) of one study's forward passes."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    seg = analyzer.seg.model
    inputs = analyzer._seg_inputs(study, [])
    sides = sorted({k[0] for k in inputs})
    b = len(sides)
    H, W = (seg.input_size, seg.input_size) if isinstance(seg.input_size, int) else seg.input_size
    x = torch.zeros(b, 2, len(seg.channels), H, W, device=analyzer.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        seg(x, x if b == 2 else None, present=None, contra_present=None)
    out["segmentation"] = {"parameters": sum(p.numel() for p in seg.parameters()), "gflops_per_study": fc.get_total_flops() / 1e9,
                           "batch": f"{b} breast(s) x (CC, MLO) + contralateral", "input": [H, W]}
    if analyzer.cls is not None:
        cls = analyzer.cls.model
        s = int(cls.input_size)
        a = torch.rand(1, 2, 3, s, s, device=analyzer.device)
        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            cls(a, a)
        bb = sum(p.numel() for p in cls.backbone.parameters())
        out["classifier"] = {"parameters": sum(p.numel() for p in cls.parameters()), "backbone_parameters": bb,
                             "gflops_per_study": fc.get_total_flops() / 1e9, "input": [s, s], "views": 4}
        # Grad-CAM = one more forward with gradients plus a backward pass (~3x the
        # forward); FlopCounterMode's module tracker cannot follow the CAM hooks.
        out["gradcam"] = {"gflops_per_study": 3 * fc.get_total_flops() / 1e9, "note": "estimate: 3 x classifier forward"}
    return out


def worker(args) -> dict:
    t0 = time.perf_counter()
    import torch

    from core_model.inference.analyzer import Analyzer
    from core_model.io import load_study

    t_import = time.perf_counter() - t0
    if args.study == "phantom":
        from core_model.synth.phantom import generate_case

        study = generate_case(7).study
    else:
        study = load_study(args.study)
    t = time.perf_counter()
    an = Analyzer(args.seg, args.cls, device=args.device, num_threads=args.threads if args.device == "cpu" else None)
    t_load = time.perf_counter() - t
    runs = []
    for i in range(args.repeats + 1):
        if an.device.type == "cuda":
            torch.cuda.synchronize()
        res = an.analyze(study)
        if an.device.type == "cuda":
            torch.cuda.synchronize()
        runs.append(res.timings_s)
    cold, warm = runs[0], runs[1:]
    stages = sorted({k for r in warm for k in r})
    out = {
        "device": an.device_label,
        "threads": an.num_threads if an.device.type == "cpu" else None,
        "study": study.summary(),
        "image_shapes": sorted({str(im.shape) for im in study.images.values()}),
        "import_s": round(t_import, 3),
        "load_weights_s": round(t_load, 3),
        "cold_s": {k: round(v, 4) for k, v in cold.items()},
        "warm_median_s": {k: round(statistics.median(r[k] for r in warm if k in r), 4) for k in stages},
        "warm_runs": len(warm),
        "classifier_mode": res.classifier_mode,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # Linux: KiB
        # other work on the machine inflates CPU times: the 1-minute load average when this config ended
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "models": an.identity,
    }
    if an.device.type == "cuda":
        out["cuda_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if args.costs:
        out["costs"] = _model_costs(an, study)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seg", type=Path, default=None, help="segmentation weights (default: shipped)")
    ap.add_argument("--cls", type=Path, default=None, help="classifier weights (default: shipped)")
    ap.add_argument("--untrained", action="store_true", help="benchmark default-size untrained models instead")
    ap.add_argument("--study", default=str(REPO / "resources" / "demo"), help="study folder, or 'phantom'")
    ap.add_argument("--device", default="all", help="cpu, cuda or all (cpu + cuda when present)")
    ap.add_argument("--threads", default="1,2", help="CPU thread counts to run")
    ap.add_argument("--repeats", type=int, default=3, help="warm runs after the cold one")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_analyze.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--costs", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(dumps(worker(args), label="worker"))
        return 0

    tmp = None
    if args.untrained:
        tmp = tempfile.TemporaryDirectory()
        args.seg, args.cls = _make_untrained(Path(tmp.name))
    import torch

    configs = []
    if args.device in ("cpu", "all"):
        configs += [("cpu", int(n)) for n in args.threads.split(",")]
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        configs.append(("cuda", None))
    results = []
    for i, (dev, n) in enumerate(configs):
        cmd = [sys.executable, __file__, "--worker", "--device", dev, "--study", args.study, "--repeats", str(args.repeats)]
        if n:
            cmd += ["--threads", str(n)]
        if args.seg:
            cmd += ["--seg", str(args.seg)]
        if args.cls:
            cmd += ["--cls", str(args.cls)]
        if i == 0 or dev == "cuda":
            cmd.append("--costs")
        env = dict(os.environ, OMP_NUM_THREADS=str(n or os.cpu_count()))
        print(f"running {dev}" + (f" with {n} thread(s)" if n else "") + " ...", file=sys.stderr)
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            print(p.stderr[-2000:], file=sys.stderr)
            results.append({"device": dev, "threads": n, "error": p.stderr.strip().splitlines()[-1:]})
            continue
        results.append(json.loads(p.stdout.strip().splitlines()[-1]))
    doc = {
        "benchmark": "nafv-analyze full study analysis (segmentation, contours, classification, Grad-CAM)",
        "weights": "untrained default-size models" if args.untrained else "given/shipped weights",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(doc, label=str(args.out), indent=1) + "\n")
    print(f"{'config':22s} {'cold total':>10s} {'warm total':>10s}  warm per stage (s)                         peak RSS")
    for r in results:
        if "error" in r:
            print(f"{r['device']:22s} error: {r['error']}")
            continue
        w = r["warm_median_s"]
        per = " ".join(f"{k[:4]}={v:.2f}" for k, v in w.items() if k != "total")
        print(f"{r['device']:22s} {r['cold_s']['total']:10.2f} {w['total']:10.2f}  {per:42s} {r['peak_rss_mb']:.0f} MB")
    for r in results:
        if "costs" in r:
            for k, c in r["costs"].items():
                params = f"{c['parameters'] / 1e6:.2f} M params" if "parameters" in c else ""
                print(f"{k:14s} {params:16s} {c['gflops_per_study']:.1f} GFLOP per study")
            break
    print(f"wrote {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

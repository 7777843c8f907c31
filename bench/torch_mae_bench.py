"""PyTorch side of the MAE pre-training throughput benchmark.

Times forward + backward + AdamW steps of the reference model in
tests/ref/mae_ref.py on random images (3 channels, mask ratio 0.75) and
prints one JSON line. It measures throughput only; it does not check results.

  /usr/bin/python3 bench/torch_mae_bench.py --model vit_tiny --img 32 \
      --patch 4 --dec-dim 128 --dec-depth 2 --dec-heads 4 --batch 256 \
      --steps 5 --warmup 2 --threads 2 --precision bf16
"""
import argparse
import importlib.util
import json
import os
import resource
import time

import torch

_REF = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "tests", "ref", "mae_ref.py")


def _load_ref():
    spec = importlib.util.spec_from_file_location("mae_ref", _REF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def add_common_args(ap, batch):
    """The flags every PyTorch benchmark here takes (bench_finetune too)."""
    ap.add_argument("--model", choices=["vit_tiny", "vit_small", "vit_base"],
                    default="vit_tiny")
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--seed", type=int, default=0)


def time_steps(step, warmup, steps):
    """Runs warmup untimed steps, then steps timed ones: (seconds, last loss,
    peak RSS in MB)."""
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    dt = time.perf_counter() - t0
    # ru_maxrss is in KiB on Linux
    return dt, loss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, 256)
    ap.add_argument("--dec-dim", type=int, default=128)
    ap.add_argument("--dec-depth", type=int, default=2)
    ap.add_argument("--dec-heads", type=int, default=4)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ref = _load_ref()
    model = ref.mae_vit(a.model, a.img, a.patch, a.dec_dim, a.dec_depth,
                        a.dec_heads, in_chans=3)
    opt = torch.optim.AdamW(ref.param_groups_weight_decay(model, 0.05),
                            lr=1e-4, betas=(0.9, 0.95))
    imgs = torch.randn(a.batch, 3, a.img, a.img)

    def step():
        opt.zero_grad(set_to_none=True)
        # autocast covers the forward only; backward follows its dtypes
        with torch.autocast("cpu", dtype=torch.bfloat16,
                            enabled=a.precision == "bf16"):
            loss, _, _ = model(imgs, 0.75)
        loss.backward()
        opt.step()
        return loss.item()

    dt, loss, rss_mb = time_steps(step, a.warmup, a.steps)
    print(json.dumps({
        "impl": "pytorch", "model": a.model, "precision": a.precision,
        "batch": a.batch, "img_per_s": round(a.batch * a.steps / dt, 2),
        "peak_rss_mb": round(rss_mb, 1),
        "img": a.img, "patch": a.patch, "dec": f"{a.dec_dim}x{a.dec_depth}",
        "threads": a.threads, "steps": a.steps, "s_per_step": round(dt / a.steps, 4),
        "final_loss": round(loss, 5), "torch": torch.__version__}))


if __name__ == "__main__":
    main()

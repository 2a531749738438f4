#!/usr/bin/env python3
"""Train the shipped encoder on rendered scenes (see marepo_ros/encoder_training.py).

    python scripts/train_encoder.py --minutes 60            # train, checkpointing as it goes
    python scripts/train_encoder.py --minutes 30 --resume   # continue from the last checkpoint
    python scripts/train_encoder.py --export-only           # write marepo_ros/models/weights/encoder.pt
    python scripts/train_encoder.py --init marepo_ros/models/weights/encoder.pt --minutes 60  # go on
                                                            # from the shipped weights

Checkpoints (weights, optimiser, step, log) go to --run-dir; the exported weights are the
encoder state dict in fp16 with ACE's key names.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import marepo_ros  # noqa: F401  (before torch: sets how its OpenMP threads wait)
import torch
from tqdm import tqdm

from marepo_ros.models.networks import Encoder, shipped_encoder_path
from marepo_ros.training.encoder import PairSource, contrastive_loss

VAL_SEED = 1_000_003  # held-out scenes: never drawn by the training source (seeded apart)


def export(encoder: Encoder, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.half() for k, v in encoder.state_dict().items()}, tmp)
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=Path("runs/encoder"))
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-time budget of this run")
    ap.add_argument("--max-steps", type=int, default=100_000)
    ap.add_argument("--batch-pairs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--anneal", action="store_true",
                    help="cosine-decay the learning rate to 5 %% over this run's --minutes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from --run-dir/checkpoint.pt")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these encoder weights (e.g. the shipped ones) with a fresh optimiser")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--export", type=Path, default=shipped_encoder_path())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = args.run_dir / "checkpoint.pt"

    encoder = Encoder()
    opt = torch.optim.AdamW(encoder.parameters(), lr=args.lr, weight_decay=1e-4)
    step, log, seconds = 0, [], 0.0
    if (args.resume or args.export_only) and ckpt_path.exists():
        ck = torch.load(ckpt_path, weights_only=False)
        encoder.load_state_dict(ck["encoder"])
        opt.load_state_dict(ck["optimizer"])
        step, log, seconds = ck["step"], ck["log"], ck.get("seconds", 0.0)
        print(f"resumed at step {step} ({seconds / 60:.1f} min trained so far)")
    elif args.init is not None:
        encoder.load_state_dict({k: v.float() for k, v in torch.load(args.init, weights_only=True).items()})
        print(f"initialised from {args.init}")
    if args.export_only:
        export(encoder, args.export)
        print(f"wrote {args.export}")
        return

    start = time.time()
    source = PairSource(seed=args.seed * 7919 + step)
    val = [PairSource(seed=VAL_SEED, pool=4).batch(8) for _ in range(2)]

    def validate() -> float:
        encoder.eval()
        with torch.no_grad():
            acc = sum(contrastive_loss(encoder, b)[1] for b in val) / len(val)
        encoder.train()
        return acc

    def trained_seconds() -> float:
        return seconds + time.time() - start

    def save() -> None:
        torch.save({"encoder": encoder.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "log": log, "seconds": trained_seconds()}, ckpt_path.with_suffix(".tmp"))
        ckpt_path.with_suffix(".tmp").replace(ckpt_path)
        export(encoder, args.export)

    bar = tqdm(total=int(args.minutes * 60), unit="s", desc="encoder", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}s {postfix}")
    encoder.train()
    run_avg = None
    while step < args.max_steps and time.time() - start < args.minutes * 60:
        factor = min(1.0, (step + 1) / 200)  # warm-up
        if args.anneal:
            frac = min(1.0, (time.time() - start) / (args.minutes * 60))
            factor *= 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = args.lr * factor
        batch = source.batch(args.batch_pairs)
        loss, acc = contrastive_loss(encoder, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), 5.0)
        opt.step()
        step += 1
        run_avg = (loss.item(), acc) if run_avg is None else \
            (0.95 * run_avg[0] + 0.05 * loss.item(), 0.95 * run_avg[1] + 0.05 * acc)
        bar.n = int(time.time() - start)
        bar.set_postfix_str(f"step {step} loss {run_avg[0]:.3f} acc {run_avg[1]:.3f}")
        if step % 100 == 0:
            entry = {"step": step, "loss": run_avg[0], "train_acc": run_avg[1], "val_acc": validate(),
                     "minutes": trained_seconds() / 60}
            log.append(entry)
            tqdm.write(json.dumps(entry))
            save()
    bar.close()
    log.append({"step": step, "loss": run_avg[0] if run_avg else None, "val_acc": validate(),
                "minutes": trained_seconds() / 60})
    save()
    print(json.dumps(log[-1]))
    print(f"wrote {ckpt_path} and {args.export}")


if __name__ == "__main__":
    main()

"""Classifier fine-tuning speed -> bench/results/finetune.json.

Train and inference samples/s of the outcome classifier (an encoder + a new 2-class head) at
sequence lengths 256 and 512, on the CPU and, whenever `torch.cuda.is_available()`, on the GPU
(bf16 autocast there). Each step is a full forward + backward + AdamW update, as in the Trainer;
inputs are full-length (no padding), as most TOP criteria exceed 512 word pieces. A few timed
steps after one warm-up step: minutes on a 2-core CPU, so run it under the shared lock:

    flock /tmp/trialwright-heavy.lock python bench/finetune.py [--model SPEC] [--steps 3]

Results from other devices already in the file are kept (keyed by device, model and length).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from trialwright.eval.utility.model import resolve_classifier_model

RESULTS = Path(__file__).parent / "results" / "finetune.json"
LENGTHS = (256, 512)


def _batch(model, batch_size: int, length: int, device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (batch_size, length), generator=g)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "labels": torch.randint(0, 2, (batch_size,), generator=g).to(device)}


def _autocast(device: str, bf16: bool) -> torch.autocast:
    return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(model_dir: str, device: str, length: int, batch: int, steps: int) -> dict:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the new head's "MISSING weights" report is expected
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2).to(device)
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-5)
    inputs = _batch(model, batch, length, device)
    model.train()
    times = []
    for step in range(steps + 1):  # step 0 warms up allocators and kernels
        start = time.perf_counter()
        with _autocast(device, bf16):
            loss = model(**inputs).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        _sync(device)
        if step:
            times.append(time.perf_counter() - start)
    train_s = sum(times) / len(times)
    infer_batch = batch * 4
    infer = _batch(model, infer_batch, length, device)
    infer.pop("labels")
    model.eval()
    infer_times = []
    with torch.inference_mode():
        for step in range(steps + 1):
            start = time.perf_counter()
            with _autocast(device, bf16):
                model(**infer)
            _sync(device)
            if step:
                infer_times.append(time.perf_counter() - start)
    infer_s = sum(infer_times) / len(infer_times)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"length": length, "train_batch": batch, "infer_batch": infer_batch,
            "timed_steps": steps, "bf16": bf16,
            "train_samples_per_s": round(batch / train_s, 2),
            "infer_samples_per_s": round(infer_batch / infer_s, 2),
            "train_step_s": round(train_s, 3), "peak_memory_mb": round(peak)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: the packaged all-MiniLM-L6-v2")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--cpu-batch", type=int, default=8)
    parser.add_argument("--gpu-batch", type=int, default=32)
    args = parser.parse_args()

    info = resolve_classifier_model(args.model)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    existing = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": []}
    runs = []
    for device in devices:
        name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
        for length in LENGTHS:
            batch = args.gpu_batch if device == "cuda" else args.cpu_batch
            load = os.getloadavg()[0]
            result = measure(info.path, device, length, batch, args.steps)
            runs.append({"device": device, "device_name": name, "model": info.name,
                         "model_spec": info.spec, "torch_threads": torch.get_num_threads(),
                         "load_average_1m_before": round(load, 2), **result})
            print(json.dumps(runs[-1]), flush=True)
    keys = {(r["device"], r["model"], r["length"]) for r in runs}
    kept = [r for r in existing.get("runs", [])
            if (r["device"], r["model"], r["length"]) not in keys]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "torch": torch.__version__, "cuda": torch.cuda.is_available()},
        "note": "full-length random token inputs (no padding); train step = forward + backward "
                "+ AdamW; CPU fp32, GPU bf16 autocast; shared machine: see load_average",
        "runs": kept + runs}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

"""Full mode: fine-tune the whole encoder with a new classification head (Hugging Face Trainer).

GPU when present (bf16 where supported); dynamic padding (`DataCollatorWithPadding`) and
length-grouped batches keep padding small. Training runs a fixed number of epochs, as the RR
paper did (BioBERT: lr 1e-5, batch 8, 7 epochs, length 512), so no split is spent on checkpoint
selection. On a 2-core CPU MiniLM trains at about 1-4 samples/s: smoke runs only there.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field
from trialwright.eval.utility.model import ModelInfo
from trialwright.eval.utility.scorer import Fit, Mode, softmax_positive
from trialwright.eval.utility.texts import ClassifierExample


class FineTuneConfig(BaseModel):
    max_length: int = Field(512, ge=16, le=512)
    learning_rate: float = Field(2e-5, gt=0)
    epochs: float = Field(5.0, gt=0)
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1, description="raise for big models on small memory")
    weight_decay: float = 0.01
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    eval_batch_size: int = Field(64, ge=1)
    bf16: bool | None = Field(None, description="None: on when the GPU supports it")
    logging_steps: int = Field(5, ge=1)


def device_name() -> str:
    import torch

    return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"


class FineTuner:
    mode: Mode = "finetune"

    def __init__(self, model: ModelInfo, config: FineTuneConfig | None = None,
                 work_dir: Path | None = None):
        import datasets
        import torch
        from transformers import AutoTokenizer, DataCollatorWithPadding
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # "newly initialized head" is the point here
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
        self.model_info, self.config = model, config or FineTuneConfig()
        self.tokenizer = AutoTokenizer.from_pretrained(model.path)
        self.cuda = torch.cuda.is_available()
        # Dynamic padding; multiples of 8 suit tensor cores on a GPU.
        self.collator = DataCollatorWithPadding(self.tokenizer,
                                                pad_to_multiple_of=8 if self.cuda else None)
        self.bf16 = (self.cuda and torch.cuda.is_bf16_supported()
                     if self.config.bf16 is None else self.config.bf16)
        self.work_dir = work_dir

    def _dataset(self, examples: list[ClassifierExample]):
        from datasets import Dataset

        data = Dataset.from_dict({"text": [e.text for e in examples],
                                  "label": [e.label for e in examples]})
        return data.map(lambda b: self._tokenize(b["text"]), batched=True,
                        remove_columns=["text"])

    def _tokenize(self, texts: list[str]) -> dict[str, list]:
        enc = self.tokenizer(texts, truncation=True, max_length=self.config.max_length)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]  # for length-grouped batches
        return enc

    def _model(self, seed: int):
        from transformers import AutoModelForSequenceClassification, set_seed

        set_seed(seed)  # the new head's initial weights depend on the seed
        return AutoModelForSequenceClassification.from_pretrained(self.model_info.path,
                                                                  num_labels=2)

    def _trainer(self, model, out: Path, seed: int, train):
        from transformers import PrinterCallback, Trainer, TrainingArguments

        c = self.config
        args = TrainingArguments(
            output_dir=str(out), seed=seed, data_seed=seed,
            per_device_train_batch_size=c.batch_size, per_device_eval_batch_size=c.eval_batch_size,
            gradient_accumulation_steps=c.grad_accum, learning_rate=c.learning_rate,
            num_train_epochs=c.epochs, weight_decay=c.weight_decay, warmup_steps=c.warmup_ratio,
            bf16=self.bf16, use_cpu=not self.cuda, train_sampling_strategy="group_by_length",
            eval_strategy="no", save_strategy="no", logging_strategy="steps",
            logging_steps=c.logging_steps, report_to="none", disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=train,
                          processing_class=self.tokenizer, data_collator=self.collator)
        trainer.remove_callback(PrinterCallback)  # losses are returned, not printed
        return trainer

    def predict(self, model, test: list[ClassifierExample]) -> np.ndarray:
        """P(success) in the order of `test`.

        Our own loop, not `Trainer.predict`: with group_by_length, transformers 5 also
        length-groups the evaluation sampler and returns predictions in that shuffled order.
        """
        import torch

        enc = self._tokenize([e.text for e in test])
        inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        order = np.argsort(enc["length"], kind="stable")  # similar lengths share a batch
        device = next(model.parameters()).device
        probs = np.empty(len(test))
        model.eval()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16,
                                                    enabled=self.bf16):
            for start in range(0, len(order), self.config.eval_batch_size):
                rows = order[start:start + self.config.eval_batch_size]
                batch = self.collator([{k: enc[k][i] for k in inputs} for i in rows])
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                probs[rows] = softmax_positive(logits.float().cpu().numpy().astype(np.float64))
        return probs

    def untuned(self, test: list[ClassifierExample], seed: int) -> Fit:
        start = time.perf_counter()
        model = self._model(seed).to("cuda" if self.cuda else "cpu")
        return Fit(probs=self.predict(model, test), seconds=time.perf_counter() - start)

    def fit_predict(self, train: list[ClassifierExample], test: list[ClassifierExample],
                    seed: int) -> Fit:
        with self._scratch() as out:
            trainer = self._trainer(self._model(seed), Path(out), seed, self._dataset(train))
            start = time.perf_counter()
            result = trainer.train()
            seconds = time.perf_counter() - start
            losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
            return Fit(probs=self.predict(trainer.model, test), seconds=seconds,
                       train_losses=losses,
                       details={"train_samples_per_second":
                                result.metrics.get("train_samples_per_second"),
                                "bf16": self.bf16, "device": device_name()})

    def _scratch(self) -> tempfile.TemporaryDirectory:
        """A throwaway Trainer output folder: no checkpoints are kept."""
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix="finetune-", dir=self.work_dir,
                                           ignore_cleanup_errors=True)

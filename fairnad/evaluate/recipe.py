"""The training recipe's settings, apart from the trainer (which imports torch): what `--train
NAME=VALUE` may set, checked where a user gives it, before anything starts. (The sandboxed worker
imports this too: pydantic is imported only to check.)"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt

Positive = Annotated[int, Ge(1)]


@dataclass
class TrainConfig:
    epochs: Positive = 5
    batch_size: Positive = 128
    lr: Annotated[float, Gt(0)] = 3e-3
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    warmup_epochs: float = 0.0
    grad_clip: float | None = 5.0
    device: str = "cpu"
    amp: bool | None = None  # default: on for CUDA (bf16)
    channels_last: bool | None = None  # default: on for CUDA with 4-D inputs
    seed: int = 0
    eval_batch_size: Positive = 1024
    check_every: int | None = None  # steps between divergence checks (default 1 on CPU, 50 on CUDA)
    cuda_graph: bool = True  # capture the whole training step in a CUDA graph when the model allows it
    extra: dict[str, Any] = field(default_factory=dict)


SET_ELSEWHERE = {"device": "--device", "seed": "--seed", "extra": None}


def check_overrides(train: dict[str, Any]) -> dict[str, Any]:
    """`train` as TrainConfig would take it (numbers from text, ...); ValueError naming the setting
    and what it takes otherwise."""
    names = [f.name for f in fields(TrainConfig) if f.name not in SET_ELSEWHERE]
    for k in train:
        if k in SET_ELSEWHERE:
            raise ValueError(f"{k}: not a recipe setting" + (f"; use {SET_ELSEWHERE[k]}" if SET_ELSEWHERE[k] else ""))
        if k not in names:
            raise ValueError(f"{k}: unknown recipe setting; one of {', '.join(names)}")
    from pydantic import ValidationError

    try:
        checked = _adapter().validate_python(train)
    except ValidationError as err:
        e = err.errors()[0]
        raise ValueError(f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}") from None
    return {k: getattr(checked, k) for k in train}


@functools.cache
def _adapter():
    from pydantic import TypeAdapter

    return TypeAdapter(TrainConfig)

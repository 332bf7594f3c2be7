"""How to train: :class:`TrainConfig` for token streams, :class:`Recipe` for example sets, one schedule.

Both configs hand out the same schedule object, a :class:`Schedule` (linear warmup, then cosine
decay, inverse square root, constant, or one step down), as ``cfg.lr_schedule``; :func:`lr_at`
reads it. The training loop itself lives in :mod:`lm_steps.training`; this module is plain data,
so stage modules can name their recipes without importing a trainer.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property

from .checks import check_fields

__all__ = ["SCHEDULES", "OPTIMIZERS", "Schedule", "TrainConfig", "lr_at", "Recipe", "check_ints"]

SCHEDULES = ("cosine", "inverse_sqrt", "constant")  # TrainConfig's; a Recipe's are "step" and "cosine"
OPTIMIZERS = ("sgd", "adam", "adamw")  # what lm_steps.training.fit builds


def check_ints(cfg, names, *, minimum: int, extra: str = "") -> None:
    """Raise ValueError naming the first field of ``cfg`` in ``names`` that is not an integer >= ``minimum``."""
    check_fields(cfg, names, minimum=minimum, hint=extra)


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every step: ``schedule(step)``, a pure function (``step`` 0-based).

    Warmup: ``lr * (step + 1) / (warmup + 1)`` for the first ``warmup`` steps. Then ``kind``:
    ``cosine`` falls along a half cosine from ``lr`` to ``min_lr`` at step ``decay_iters`` and
    stays there; ``inverse_sqrt`` is Vaswani et al.'s ``lr * sqrt(warmup / (step + 1))``;
    ``constant`` stays at ``lr``; ``step`` keeps ``lr`` until ``decay_iters``, then ``min_lr``.
    :class:`TrainConfig` and :class:`Recipe` both hand one out as ``cfg.lr_schedule``.
    """

    lr: float
    min_lr: float = 0.0
    warmup: int = 0
    decay_iters: int = 0
    kind: str = "cosine"

    def __post_init__(self):
        check_ints(self, ("warmup", "decay_iters"), minimum=0)
        if self.kind not in SCHEDULES + ("step",):
            raise ValueError(f"kind must be one of {SCHEDULES + ('step',)}, got {self.kind!r}")
        if not 0 < self.lr < math.inf or not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr with lr a positive number, got min_lr={self.min_lr}, "
                             f"lr={self.lr}")

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / (self.warmup + 1)
        if self.kind == "constant":
            return self.lr
        if self.kind == "inverse_sqrt":
            return self.lr * math.sqrt(max(self.warmup, 1) / (step + 1))
        if step >= self.decay_iters:
            return self.min_lr
        if self.kind == "step":
            return self.lr
        progress = (step - self.warmup) / max(self.decay_iters - self.warmup, 1)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.lr - self.min_lr)


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model's sizes live in its own config).

    One optimizer step sees ``batch_size * grad_accum * world_size`` sequences. The learning
    rate warms up linearly for ``warmup_iters`` steps, then follows ``schedule``: ``cosine``
    decays to ``min_lr`` at ``lr_decay_iters`` (default ``max_iters``); ``inverse_sqrt`` is
    Vaswani et al.'s ``lr * sqrt(warmup / step)``; ``constant`` stays at ``lr``. Every
    ``eval_interval`` steps the loss is estimated on ``eval_iters`` batches of each split.
    ``dtype="auto"`` autocasts to bfloat16 on GPUs that support it, else runs in float32.
    """

    max_iters: int = 5000
    batch_size: int = 64
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None
    schedule: str = "cosine"
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    eval_interval: int = 250
    eval_iters: int = 20
    checkpoint_every: int = 0
    dtype: str = "auto"
    seed: int = 1337

    def __post_init__(self):
        check_ints(self, ("max_iters", "warmup_iters", "eval_iters", "checkpoint_every"), minimum=0)
        check_ints(self, ("batch_size", "grad_accum", "eval_interval"), minimum=1)
        check_ints(self, ("seed",), minimum=0)
        if self.lr_decay_iters is not None:
            check_ints(self, ("lr_decay_iters",), minimum=0, extra=" (or None: decay until max_iters)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}: lower min_lr")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be >= 0 (0 turns it off), got {self.weight_decay}; a negative "
                             f"value would push the weights away from zero")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1) (Adam's moving-average factor), got {getattr(self, name)}")
        if not self.grad_clip >= 0:
            raise ValueError(f"grad_clip must be >= 0 (the largest gradient norm; 0 turns clipping off), got "
                             f"{self.grad_clip}; a negative value would turn every step uphill")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be 'auto', 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.warmup_iters > self.max_iters:
            warnings.warn(f"warmup_iters={self.warmup_iters} > max_iters={self.max_iters}: the learning rate never "
                          f"reaches lr={self.lr}; lower warmup_iters (or raise max_iters)", stacklevel=3)
        decay = self.lr_decay_iters
        if self.schedule == "cosine" and decay is not None and decay < self.warmup_iters:
            warnings.warn(f"lr_decay_iters={decay} < warmup_iters={self.warmup_iters}: the learning rate drops from "
                          f"lr to min_lr right after the warmup; raise lr_decay_iters", stacklevel=3)

    @cached_property
    def lr_schedule(self) -> Schedule:
        """The learning-rate :class:`Schedule` these fields describe."""
        decay = self.lr_decay_iters if self.lr_decay_iters is not None else self.max_iters
        return Schedule(self.lr, self.min_lr, self.warmup_iters, decay, self.schedule)


def lr_at(step: int, cfg) -> float:
    """The learning rate of optimizer step ``step`` (0-based), a pure function of the config.

    ``cfg`` is a :class:`TrainConfig`, a :class:`Recipe` or a :class:`Schedule`; the formula is
    :class:`Schedule`'s (warmup: ``lr * (step + 1) / (warmup_iters + 1)`` for the first
    ``warmup_iters`` steps).
    """
    return (cfg if isinstance(cfg, Schedule) else cfg.lr_schedule)(step)


@dataclass(frozen=True)
class Recipe:
    """How to train on examples: ``steps`` of ``batch_size``, an optimizer and a learning-rate schedule.

    ``schedule="step"`` keeps ``lr`` until ``decay_at * steps`` then uses ``final_lr`` (the
    lectures' 0.1 -> 0.01); ``"cosine"`` is :func:`lr_at`'s: a linear warmup for ``warmup`` steps,
    then a half cosine from ``lr`` down to ``final_lr``. ``weight_decay`` is passed to
    :func:`lm_steps.training.fit` (decoupled decay of the matrices with ``adamw``, L2 with ``sgd``).
    Train with ``fit(LastPosition(model), X, Y, recipe)``.
    """

    steps: int
    batch_size: int
    optimizer: str = "sgd"
    lr: float = 0.1
    final_lr: float = 0.01
    schedule: str = "step"
    decay_at: float = 0.5
    warmup: int = 0
    weight_decay: float = 0.0

    def __post_init__(self):
        check_ints(self, ("steps", "warmup"), minimum=0)
        check_ints(self, ("batch_size",), minimum=1)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0 < self.final_lr <= self.lr:
            raise ValueError(f"need 0 < final_lr <= lr, got final_lr={self.final_lr}, lr={self.lr}: lower final_lr")
        if not 0 <= self.decay_at <= 1:
            raise ValueError(f"decay_at is a fraction of the steps in [0, 1], got {self.decay_at}")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be >= 0 (0 turns it off), got {self.weight_decay}")
        if self.schedule == "step" and self.warmup:
            raise ValueError(f"warmup={self.warmup} applies to the cosine schedule only; set schedule='cosine' "
                             f"or warmup=0")
        if self.warmup > self.steps:
            warnings.warn(f"warmup={self.warmup} > steps={self.steps}: the learning rate never reaches lr={self.lr}; "
                          f"lower warmup (or raise steps)", stacklevel=3)

    @cached_property
    def lr_schedule(self) -> Schedule:
        """The learning-rate :class:`Schedule` of the recipe (``step``: down at ``decay_at * steps``)."""
        if self.schedule == "step":  # step < decay_at * steps  <=>  step < ceil(decay_at * steps), step an integer
            return Schedule(self.lr, self.final_lr, 0, math.ceil(self.decay_at * self.steps), "step")
        return Schedule(self.lr, self.final_lr, self.warmup, self.steps, "cosine")

    @property
    def schedule_config(self) -> TrainConfig:
        """Deprecated: the cosine schedule as a :class:`TrainConfig`; use :attr:`lr_schedule`."""
        warnings.warn("Recipe.schedule_config is deprecated and goes in the next release; use recipe.lr_schedule",
                      DeprecationWarning, stacklevel=2)
        return TrainConfig(max_iters=self.steps, lr=self.lr, min_lr=self.final_lr, warmup_iters=self.warmup,
                           schedule="cosine")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based), a pure function of the recipe."""
        return self.lr_schedule(step)

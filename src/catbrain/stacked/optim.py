"""SGD, Adam and AdamW over stacked parameters, each job with its own hyper-parameters.

K small models trained at once keep one tensor per parameter name with a leading job axis
(``(K, out, in)``): one optimizer step then costs about one job's. torch's optimizers take one
learning rate per parameter *group*, so K jobs would need K groups of K leaves, and a step would
cost K steps of Python. Here every hyper-parameter is a ``(K,)`` tensor broadcast over the job
axis, and the arithmetic is torch's own single-tensor implementation (``torch.optim.sgd`` and
``torch.optim.adam`` on CPU), operation for operation: each scalar computed in float64 and cast
to the parameters' dtype as torch casts it, and ``add(x, alpha=a)``, which torch fuses, written as
``addcmul``. A test steps these and torch's side by side: bit for bit the same.

A job's learning rate may change (a plateau halves it); a job whose lr is 0 stops changing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0},
    "adam": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
    "adamw": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-2},
}


class StackedOptimizer:
    """``kind`` (``sgd``, ``adam`` or ``adamw``) over ``params``, each a leaf tensor whose first axis is the job.

    ``hyper`` gives each hyper-parameter as K numbers (one per job; a single number is shared):
    ``lr``, and ``momentum``, ``dampening``, ``weight_decay`` (SGD) or ``beta1``, ``beta2``, ``eps``,
    ``weight_decay`` (Adam, AdamW). ``nesterov`` (SGD) is one choice for all jobs.
    """

    def __init__(self, kind: str, params: Sequence[torch.Tensor], jobs: int, nesterov: bool = False,
                 **hyper: float | Sequence[float]) -> None:  # fmt: skip
        if kind not in DEFAULTS:
            raise ValueError(f"a stacked optimizer is one of {sorted(DEFAULTS)}, got {kind!r}")
        unknown = sorted(set(hyper) - set(DEFAULTS[kind]))
        if unknown:
            raise ValueError(f"the stacked {kind} takes {sorted(DEFAULTS[kind])}, not {unknown}")
        self.kind, self.params, self.jobs, self.nesterov = kind, list(params), jobs, nesterov
        for param in self.params:
            if param.shape[:1] != (jobs,):
                shape = tuple(param.shape)
                raise ValueError(f"a stacked parameter's first axis is the job ({jobs}), got shape {shape}")
        self.hyper: dict[str, torch.Tensor] = {}
        for name, default in DEFAULTS[kind].items():
            value = hyper.get(name, default)
            values = [float(value)] * jobs if isinstance(value, (int, float)) else [float(v) for v in value]
            if len(values) != jobs:
                raise ValueError(f"{name}: {len(values)} values for {jobs} jobs")
            self.hyper[name] = torch.tensor(values, dtype=torch.float64)
        self.steps = 0
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]
        self._cache: dict[tuple, tuple] = {}
        # Whether any job has weight decay or momentum (a job's may not change once set): else torch skips it.
        self._any = {name: bool((self.hyper[name] != 0).any()) for name in ("weight_decay", "momentum")
                     if name in self.hyper}  # fmt: skip

    @property
    def lr(self) -> torch.Tensor:
        """Each job's learning rate, float64 ``(K,)``; assign into it (``opt.lr[k] = ...``) to change one."""
        return self.hyper["lr"]

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def _numbers(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        """The per-job numbers of this step as ``like``'s dtype and device, shaped to broadcast over its job axis:
        each computed in float64 and cast, as torch casts its scalars. Those that do not change with the step are
        kept until a hyper-parameter changes (``opt.lr[k] = 0``, or a new tensor in ``opt.hyper``; not a write
        through ``.data`` or NumPy, which torch does not count)."""
        h, step = self.hyper, self.steps
        versions = tuple((id(value), value._version) for value in h.values())  # replaced, or changed in place
        key = (like.dtype, like.device, like.dim())
        cached = self._cache.get(key)
        if cached is None or cached[0] != versions:
            float64: dict[str, torch.Tensor] = {"minus_lr": -h["lr"], "weight_decay": h["weight_decay"]}
            if self.kind == "sgd":
                float64 |= {"momentum": h["momentum"], "kept": 1 - h["dampening"]}
            else:
                float64 |= {"decayed": 1 - h["lr"] * h["weight_decay"], "one_minus_beta1": 1 - h["beta1"],
                            "beta2": h["beta2"], "one_minus_beta2": 1 - h["beta2"], "eps": h["eps"]}  # fmt: skip
            cached = self._cache[key] = (versions, self._cast(float64, like), {})
        numbers, per_step = cached[1], cached[2]
        if self.kind != "sgd" and per_step.get("step") != step:
            per_step.clear()
            per_step |= self._cast({"bias_correction2_sqrt": (1 - h["beta2"] ** step) ** 0.5,
                                    "step_size": -(h["lr"] / (1 - h["beta1"] ** step))}, like)  # fmt: skip
            per_step["step"] = step
        return {**numbers, **per_step}

    @staticmethod
    def _cast(values: dict[str, torch.Tensor], like: torch.Tensor) -> dict[str, torch.Tensor]:
        shape = (-1, *[1] * (like.dim() - 1))
        return {name: value.to(like.dtype).to(like.device).view(shape) for name, value in values.items()}

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        for param, state in zip(self.params, self.state):
            if param.grad is not None:
                (self._sgd if self.kind == "sgd" else self._adam)(param, param.grad, state, self._numbers(param))

    def _sgd(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor],
             n: dict[str, torch.Tensor]) -> None:  # fmt: skip
        h = self.hyper
        if self._any["weight_decay"]:
            grad = grad.addcmul(param, n["weight_decay"])  # grad.add(param, alpha=wd), fused
        if self._any["momentum"]:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = grad.detach().clone()
            else:
                buffer.mul_(n["momentum"]).addcmul_(grad, n["kept"])
            stepped = grad.addcmul(buffer, n["momentum"]) if self.nesterov else buffer
            if bool((h["momentum"] == 0).any()):  # momentum 0: torch skips it
                stepped = torch.where(n["momentum"] != 0, stepped, grad)
            grad = stepped
        param.addcmul_(grad, n["minus_lr"])  # param.add_(grad, alpha=-lr)

    def _adam(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor],
              n: dict[str, torch.Tensor]) -> None:  # fmt: skip
        if not state:
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        if self._any["weight_decay"]:
            if self.kind == "adamw":
                param.mul_(n["decayed"])
            else:
                grad = grad.addcmul(param, n["weight_decay"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, n["one_minus_beta1"])
        exp_avg_sq.mul_(n["beta2"]).addcmul_(n["one_minus_beta2"] * grad, grad)
        denom = (exp_avg_sq.sqrt() / n["bias_correction2_sqrt"]).add_(n["eps"])
        param.add_(n["step_size"] * exp_avg / denom)

    def job_state(self, job: int) -> dict[str, Any]:
        """Job ``job``'s state as torch's own optimizer would hold it for a model of the same parameters (in
        order): what its checkpoint stores."""
        entries: dict[int, dict[str, Any]] = {}
        for index, state in enumerate(self.state):
            entry: dict[str, Any] = {name: value[job].clone() for name, value in state.items()}
            if self.kind != "sgd" and state:
                entry["step"] = torch.tensor(float(self.steps))
            entries[index] = entry
        group = {name: float(values[job]) for name, values in self.hyper.items()}
        if self.kind != "sgd":
            group["betas"] = (group.pop("beta1"), group.pop("beta2"))
        else:
            group["nesterov"] = self.nesterov
        return {"state": entries, "param_groups": [{**group, "params": list(range(len(self.params)))}]}

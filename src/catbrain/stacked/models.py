"""K models of one architecture as one: each parameter stacked along a leading job axis, called through ``vmap``.

The jobs' weights are stacked (as ``torch.func.stack_module_state`` does); ``torch.func.functional_call`` runs the
architecture with one job's slice; ``torch.vmap`` runs all K at once, as batched matrix products.
Any ``nn.Module`` whose forward ``vmap`` can trace works (catbrain's models, and models of your own
built from torch's layers); its output for job ``k`` is the one the job's own module would give.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Stacked:
    """``models`` (one architecture, K copies with their own weights) as stacked leaf tensors and one call."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        if not models:
            raise ValueError("stacking needs at least one model")
        shapes = [{name: tuple(p.shape) for name, p in m.state_dict().items()} for m in models]
        kinds = {type(m).__name__.removeprefix("Parametrized") for m in models}  # parametrize makes a class per module
        if any(shape != shapes[0] for shape in shapes[1:]) or len(kinds) != 1:
            raise ValueError("stacked models must share one architecture (class, parameter names and shapes)")
        # As torch.func.stack_module_state, which refuses parametrized modules (each has a class of its own).
        named = [dict(m.named_parameters()) for m in models]
        self.params = {name: torch.stack([n[name].detach() for n in named]).requires_grad_(True) for name in named[0]}
        named = [dict(m.named_buffers()) for m in models]
        self.buffers = {name: torch.stack([n[name] for n in named]) for name in named[0]}
        self.jobs = len(models)
        self.architecture = models[0]  # called with each job's tensors in place of its own (functional_call)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` each ``(K, batch, ...)`` (features ``(K, batch, in)``) -> each job's output for its own rows."""

        def one(params: dict, buffers: dict, *rows: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(self.architecture, (params, buffers), rows)

        return torch.vmap(one)(self.params, self.buffers, *inputs)

    def flatten(self) -> torch.Tensor:
        """Make every parameter a view of one ``(K, P)`` tensor and its gradient a view of that tensor's ``grad``,
        which backward adds into in place; return the tensor. An optimizer then steps every parameter in one set
        of operations (its arithmetic is elementwise: the same numbers as parameter by parameter). Call
        :meth:`gathered` after each backward. Each job's parameters stay rows of the tensor, as batched matrix
        products want them ((P, K) blocks make an MLP's step 1.5x slower); autograd then warns that the gradients'
        layout "may impair performance", which is not an error and not so here."""
        jobs = self.jobs
        flat = torch.cat([p.detach().reshape(jobs, -1) for p in self.params.values()], 1)
        flat.grad = torch.zeros_like(flat)
        self._grad_views: list[tuple[torch.Tensor, torch.Tensor]] = []
        start = 0
        for name, param in self.params.items():
            size = param[0].numel()
            leaf = flat[:, start : start + size].view(param.shape).detach().requires_grad_(True)
            leaf.grad = flat.grad[:, start : start + size].view(param.shape)
            self.params[name] = leaf
            self._grad_views.append((leaf, leaf.grad))
            start += size
        return flat

    def gathered(self) -> None:
        """After a backward of flattened parameters: each gradient in its place in the flat one (where autograd
        made a new tensor, it is copied there)."""
        for leaf, view in self._grad_views:
            if leaf.grad is not view:
                view.copy_(leaf.grad)
                leaf.grad = view

    def job_state(self, job: int) -> dict[str, torch.Tensor]:
        """Job ``job``'s weights (and buffers) as its own module's ``state_dict`` holds them."""
        kept = self.architecture.state_dict().keys()  # persistent buffers only, as the module's own state_dict
        return {name: value[job].detach().clone() for name, value in {**self.params, **self.buffers}.items()
                if name in kept}  # fmt: skip

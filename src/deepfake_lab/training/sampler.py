"""A resumable, seeded sampler: endless shuffled epochs over ``n`` items.

Its whole state (generator state, current permutation, cursor) goes into checkpoints, so a
resumed run draws exactly the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

from typing import Any

import torch


class InfiniteSampler:
    """Yields index batches from successive random permutations of ``range(n)``.

    Args:
        n: dataset size (> 0).
        seed: seed of the sampler's own ``torch.Generator``.
        shuffle: draw permutations (True) or walk in order (False).
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True) -> None:
        if n <= 0:
            raise ValueError("InfiniteSampler needs at least one item")
        self.n = n
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self._perm = self._new_perm()
        self._pos = 0

    def _new_perm(self) -> torch.Tensor:
        if self.shuffle:
            return torch.randperm(self.n, generator=self.generator)
        return torch.arange(self.n)

    def next_batch(self, batch: int) -> torch.Tensor:
        """The next ``batch`` indices (int64), crossing epoch boundaries as needed."""
        parts = []
        need = batch
        while need > 0:
            take = min(need, self.n - self._pos)
            parts.append(self._perm[self._pos : self._pos + take])
            self._pos += take
            need -= take
            if self._pos == self.n:
                self.epoch += 1
                self._perm = self._new_perm()
                self._pos = 0
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "epoch": self.epoch,
            "pos": self._pos,
            "perm": self._perm.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["n"]) != self.n:
            raise ValueError(f"sampler state is for {state['n']} items, dataset has {self.n}")
        self.epoch = int(state["epoch"])
        self._pos = int(state["pos"])
        self._perm = state["perm"].clone()
        self.generator.set_state(state["generator"])

"""Which buckets a module's forward waits for, while step()'s all-gathers are still in flight.

A module's forward reads the parameters it registers, and sometimes a child's parameters
without calling the child: nn.MultiheadAttention passes `self.out_proj.weight` and `.bias` to
a function and never calls `out_proj`. Waiting for the whole subtree would be safe but would
make the outermost module wait for every bucket (no overlap left); so the child's parameters
are charged to the parent when the child's forward does not run. That is learned: after each
forward of a module, every child holding trainable parameters whose forward has not run
during the current forward of the whole model (containers such as nn.ModuleList, which have
no forward, count as run when their children ran) is charged to it, for good. The first
forward, before any step, has nothing in flight, so it learns safely; a child that stops
being called later is learned by the end of the forward in which that happens (which then
waits for everything, as every forward's end does).

Not seen: a parameter read by a module that is not its ancestor (a reference kept outside
the module tree), or read directly before the child's own forward runs in the same forward.
Code like that must call `DeAR.flush()` first.
"""

from __future__ import annotations

from torch import nn

from .layout import ParamSlot


class ForwardWaits:
    """Per module: the slots it registers, the children it may read, the buckets to wait for."""

    def __init__(self, root: nn.Module, slots: list[ParamSlot]) -> None:
        self._slots = slots
        slot_of = {id(s.param): s.index for s in slots}
        self._own: dict[int, set[int]] = {}
        self._children: dict[int, list[nn.Module]] = {}
        self.modules: list[nn.Module] = []  # every module with trainable parameters below it
        self._collect(root, slot_of, {})
        self._direct: dict[int, set[int]] = {}  # learned: slots of children it reads uncalled
        self._ran: set[int] = set()
        self._entered: list[int] = []  # modules in the order their forward first ran
        self.buckets: dict[int, list[int]] = {}
        self.rebucket()

    def _collect(self, module: nn.Module, slot_of: dict[int, int],
                 seen: dict[int, bool]) -> bool:
        if id(module) in seen:
            return seen[id(module)]
        seen[id(module)] = False  # a module reachable from itself
        own = {slot_of[id(p)] for p in module.parameters(recurse=False) if id(p) in slot_of}
        children = [c for c in module.children() if self._collect(c, slot_of, seen)]
        if own or children:
            self._own[id(module)] = own
            self._children[id(module)] = children
            self.modules.append(module)
        seen[id(module)] = bool(own or children)
        return seen[id(module)]

    def rebucket(self) -> None:
        """Recompute every module's buckets (after the buckets were cut again)."""
        self.buckets = {}
        for module in self.modules:
            self._update(id(module))

    def _update(self, key: int) -> None:
        indices = self._own.get(key, set()) | self._direct.get(key, set())
        buckets = sorted({b for i in indices for b in self._slots[i].buckets})
        if buckets:
            self.buckets[key] = buckets
        else:
            self.buckets.pop(key, None)

    def start(self) -> None:
        """A forward of the whole model begins (or a step changed the parameters)."""
        self._ran.clear()
        self._entered.clear()

    def entered(self, module: nn.Module) -> list[int]:
        """`module`'s forward begins: the buckets to wait for."""
        if id(module) not in self._ran:
            self._ran.add(id(module))
            self._entered.append(id(module))
        return self.buckets.get(id(module), [])

    def use_order(self) -> list[int]:
        """Slot indices in the order the forward so far first used them (a module's own and
        its uncalled children's, when the module ran); the unused ones last."""
        order: list[int] = []
        seen: set[int] = set()
        for key in self._entered:
            for index in sorted(self._own.get(key, set()) | self._direct.get(key, set())):
                if index not in seen:
                    seen.add(index)
                    order.append(index)
        return order + [i for i in range(len(self._slots)) if i not in seen]

    def finished(self, module: nn.Module) -> None:
        """`module`'s forward ended: charge it the children it did not call."""
        missed: set[int] = set()
        for child in self._children.get(id(module), ()):
            self._uncalled(child, missed)
        known = self._direct.setdefault(id(module), set())
        if not missed <= known:
            known |= missed
            self._update(id(module))

    def _uncalled(self, module: nn.Module, out: set[int]) -> None:
        if id(module) in self._ran:
            return
        out |= self._own.get(id(module), set())
        for child in self._children.get(id(module), ()):
            self._uncalled(child, out)

"""Pure functions over a dependency graph `{node_id: (dependency_id, ...)}`.

The mapping's key order is the definition order, which every function keeps wherever it has a choice.
Dependencies that are not keys of the mapping are ignored (definitions reports them separately).
Everything is iterative, so a 5,000-node chain does not meet Python's recursion limit.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

Deps = Mapping[str, Sequence[str]]


def successors(deps: Deps) -> dict[str, tuple[str, ...]]:
    """For every node, the nodes that depend on it directly, in definition order, without repeats."""
    found: dict[str, dict[str, None]] = {node: {} for node in deps}
    for node, node_deps in deps.items():
        for dep in node_deps:
            if dep in found:
                found[dep][node] = None
    return {node: tuple(after) for node, after in found.items()}


def roots(deps: Deps) -> list[str]:
    """The nodes with no (known) dependency, in definition order."""
    return [node for node, node_deps in deps.items() if not any(dep in deps for dep in node_deps)]


def find_cycle(deps: Deps) -> list[str] | None:
    """One cycle as a path in execution order, first node repeated at the end, or None if acyclic.

    `['a', 'b', 'a']` means b depends on a and a depends on b. A node depending on itself is the
    cycle `['a', 'a']`.
    """
    after = successors(deps)
    state: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: finished
    for start in deps:
        if start in state:
            continue
        path = [start]
        state[start] = 1
        stack = [iter(after[start])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(after[nxt]))
    return None


def topological_order(deps: Deps) -> list[str]:
    """Every node after all its dependencies; among nodes ready at once, definition order wins.

    Raises `ValueError` naming a cycle if there is one.
    """
    position = {node: index for index, node in enumerate(deps)}
    after = successors(deps)
    waiting = {node: len({dep for dep in node_deps if dep in deps}) for node, node_deps in deps.items()}
    ready = [position[node] for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    names = list(deps)
    while ready:
        node = names[heapq.heappop(ready)]
        order.append(node)
        for succ in after[node]:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                heapq.heappush(ready, position[succ])
    if len(order) < len(deps):
        cycle = find_cycle(deps) or []
        raise ValueError("cycle: " + " -> ".join(cycle))
    return order


def downstream(deps: Deps, node_id: str) -> set[str]:
    """Every node that transitively depends on `node_id`, without `node_id` itself.

    Raises `KeyError` if `node_id` is not a node.
    """
    if node_id not in deps:
        raise KeyError(node_id)
    return _reachable(successors(deps), node_id)


def upstream(deps: Deps, node_id: str) -> set[str]:
    """Every node `node_id` transitively depends on, without `node_id` itself.

    Raises `KeyError` if `node_id` is not a node.
    """
    if node_id not in deps:
        raise KeyError(node_id)
    known = {node: tuple(dep for dep in node_deps if dep in deps) for node, node_deps in deps.items()}
    return _reachable(known, node_id)


def components(deps: Deps) -> list[tuple[str, ...]]:
    """The strongly connected components, each in definition order, every one after those it depends on.

    A node on no cycle is a component of its own. Tarjan's algorithm, iterative, O(nodes + edges).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []
    position = {node: k for k, node in enumerate(deps)}
    for start in deps:
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(deps[start]))]
        while work:
            node, pending = work[-1]
            dep = next(pending, None)
            if dep is not None:
                if dep not in deps:
                    continue
                if dep not in index:
                    index[dep] = low[dep] = len(index)
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(deps[dep])))
                elif dep in on_stack:
                    low[node] = min(low[node], index[dep])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members: list[str] = []
                while not members or members[-1] != node:
                    members.append(stack.pop())
                on_stack.difference_update(members)
                found.append(tuple(sorted(members, key=position.__getitem__)))
    return found


class Ancestry:
    """Answers "is `a` upstream of `b`?" for many pairs at once, cheaply, on any graph.

    Upstream sets are bit masks built in one pass over the strongly connected components, dependencies
    first: a 10,000-node chain costs 10,000 big-int ORs rather than 50M set insertions, and a cycle
    costs no more than a chain (every member of a cycle is upstream of every other member). Only the
    nodes in `targets` (default: all) get a bit, so asking about a few nodes keeps the masks small.
    Cost: one OR per edge of masks `len(targets)` bits wide: under 0.1 s for 10,000 nodes of ten
    dependencies each, all of them targets.
    """

    def __init__(self, deps: Deps, targets: Iterable[str] | None = None) -> None:
        self._bit = {node: 1 << k for k, node in enumerate(deps if targets is None else targets)}
        self._component: dict[str, int] = {}
        self._masks: list[int] = []  # per component: the bits of every node reached through >= 1 edge
        for number, members in enumerate(components(deps)):
            for node in members:
                self._component[node] = number
            mask, cyclic = 0, False
            for node in members:
                for dep in deps[node]:
                    if dep not in deps:
                        continue
                    other = self._component[dep]
                    if other == number:
                        cyclic = True  # a cycle (or a self-loop): each member reaches all of them
                    else:
                        mask |= self._masks[other] | self._bit.get(dep, 0)
            if cyclic:
                mask |= sum(self._bit.get(node, 0) for node in members)
            self._masks.append(mask)

    def is_upstream(self, a: str, b: str) -> bool:
        """Whether `b` transitively depends on `a` (never true for `a == b`); raises KeyError if `b`
        is not a node or `a` is not one of the targets."""
        return a != b and bool(self._masks[self._component[b]] & self._bit[a])

    def through(self, node_deps: Iterable[str]) -> Upstream:
        """The targets that are one of `node_deps` or upstream of one of them (unknown ids are ignored):
        what a node with these dependencies may read, worked out once for all its reads."""
        mask = 0
        for dep in node_deps:
            if dep in self._component:
                mask |= self._masks[self._component[dep]] | self._bit.get(dep, 0)
        return Upstream(mask, self._bit)


class Upstream:
    """A set of nodes as a bit mask over an `Ancestry`'s targets; answers `node in upstream`."""

    def __init__(self, mask: int, bits: Mapping[str, int]) -> None:
        self._mask, self._bits = mask, bits

    def __contains__(self, node: object) -> bool:
        return isinstance(node, str) and bool(self._mask & self._bits.get(node, 0))


def _reachable(edges: Mapping[str, Sequence[str]], start: str) -> set[str]:
    seen: set[str] = set()
    queue = deque(edges[start])
    while queue:
        node = queue.popleft()
        if node not in seen:
            seen.add(node)
            queue.extend(edges[node])
    seen.discard(start)  # a node in a cycle reaches itself, but is never its own up- or downstream
    return seen

"""Pure graph functions: order, cycles, reachability, on small graphs and a 5,000-node chain."""

from __future__ import annotations

import pytest

from orchestrator import dag

DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def chain(n: int) -> dict[str, tuple[str, ...]]:
    return {f"n{i}": ((f"n{i - 1}",) if i else ()) for i in range(n)}


def test_successors_roots_and_order_of_a_diamond() -> None:
    assert dag.successors(DIAMOND) == {"a": ("b", "c"), "b": ("d",), "c": ("d",), "d": ()}
    assert dag.roots(DIAMOND) == ["a"]
    assert dag.topological_order(DIAMOND) == ["a", "b", "c", "d"]
    assert dag.find_cycle(DIAMOND) is None


def test_topological_order_keeps_definition_order_among_ready_nodes() -> None:
    deps = {"z": (), "late": ("y",), "y": (), "x": ("z",)}
    # Ready at first: z and y; z is defined first. Then y and x are ready: y first. Then late (defined
    # before x) becomes ready and wins over x.
    assert dag.topological_order(deps) == ["z", "y", "late", "x"]


def test_topological_order_prefers_earlier_definition_when_both_ready() -> None:
    deps = {"c": (), "b": (), "a": ()}
    assert dag.topological_order(deps) == ["c", "b", "a"]
    deps2 = {"root": (), "second": ("root",), "first_root_child_later": ("root",)}
    assert dag.topological_order(deps2) == ["root", "second", "first_root_child_later"]


def test_unknown_dependencies_are_ignored() -> None:
    deps = {"a": ("ghost",), "b": ("a",)}
    assert dag.roots(deps) == ["a"]
    assert dag.topological_order(deps) == ["a", "b"]
    assert dag.successors(deps) == {"a": ("b",), "b": ()}


def test_duplicate_dependencies_count_once() -> None:
    deps = {"a": (), "b": ("a", "a")}
    assert dag.successors(deps) == {"a": ("b",), "b": ()}
    assert dag.topological_order(deps) == ["a", "b"]


def test_find_cycle_returns_the_path_in_execution_order() -> None:
    # b runs after a, c after b, a after c
    deps = {"a": ("c",), "b": ("a",), "c": ("b",), "d": ()}
    assert dag.find_cycle(deps) == ["a", "b", "c", "a"]


def test_find_cycle_only_returns_the_cycle_not_the_path_into_it() -> None:
    deps = {"start": (), "x": ("start", "z"), "y": ("x",), "z": ("y",)}
    assert dag.find_cycle(deps) == ["x", "y", "z", "x"]


def test_self_loop_is_a_cycle() -> None:
    assert dag.find_cycle({"a": ("a",)}) == ["a", "a"]


def test_topological_order_raises_naming_the_cycle() -> None:
    with pytest.raises(ValueError, match=r"cycle: a -> b -> a"):
        dag.topological_order({"a": ("b",), "b": ("a",)})


def test_downstream_and_upstream() -> None:
    assert dag.downstream(DIAMOND, "a") == {"b", "c", "d"}
    assert dag.downstream(DIAMOND, "b") == {"d"}
    assert dag.downstream(DIAMOND, "d") == set()
    assert dag.upstream(DIAMOND, "d") == {"a", "b", "c"}
    assert dag.upstream(DIAMOND, "a") == set()


def test_downstream_excludes_the_node_even_in_a_cycle() -> None:
    deps = {"a": ("b",), "b": ("a",)}
    assert dag.downstream(deps, "a") == {"b"}


def test_unknown_node_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        dag.downstream(DIAMOND, "nope")
    with pytest.raises(KeyError):
        dag.upstream(DIAMOND, "nope")


def test_ancestry() -> None:
    ancestry = dag.Ancestry(DIAMOND)
    assert ancestry.is_upstream("a", "d")
    assert ancestry.is_upstream("b", "d")
    assert not ancestry.is_upstream("b", "c")
    assert not ancestry.is_upstream("d", "a")
    assert not ancestry.is_upstream("a", "a")


def test_ancestry_on_a_cyclic_graph() -> None:
    ancestry = dag.Ancestry({"a": ("b",), "b": ("a",), "c": ("a",)})
    assert ancestry.is_upstream("a", "c")
    assert ancestry.is_upstream("b", "c")
    assert ancestry.is_upstream("b", "a")


def test_5000_node_chain_needs_no_recursion() -> None:
    deps = chain(5000)
    order = dag.topological_order(deps)
    assert order == list(deps)
    assert dag.find_cycle(deps) is None
    assert len(dag.downstream(deps, "n0")) == 4999
    assert len(dag.upstream(deps, "n4999")) == 4999
    assert dag.roots(deps) == ["n0"]
    ancestry = dag.Ancestry(deps)
    assert ancestry.is_upstream("n0", "n4999")
    assert not ancestry.is_upstream("n4999", "n0")


def test_5000_node_cycle_is_found_iteratively() -> None:
    deps = chain(5000)
    deps["n0"] = ("n4999",)
    cycle = dag.find_cycle(deps)
    assert cycle is not None
    assert len(cycle) == 5001
    assert cycle[0] == cycle[-1] == "n0"
    with pytest.raises(ValueError, match="cycle"):
        dag.topological_order(deps)


def test_wide_fan_out_and_in() -> None:
    deps: dict[str, tuple[str, ...]] = {"root": ()}
    deps.update({f"m{i}": ("root",) for i in range(1000)})
    deps["join"] = tuple(f"m{i}" for i in range(1000))
    order = dag.topological_order(deps)
    assert order[0] == "root" and order[-1] == "join"
    assert order[1:-1] == [f"m{i}" for i in range(1000)]
    assert dag.successors(deps)["root"] == tuple(f"m{i}" for i in range(1000))

"""Pure graph functions: order, cycles, reachability, on small graphs and a 5,000-node chain."""

from __future__ import annotations

import random

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


def test_components_come_after_the_components_they_depend_on() -> None:
    deps = {"a": ("c",), "b": ("a",), "c": ("b",), "d": ("c",), "e": (), "f": ("f",)}
    assert dag.components(deps) == [("a", "b", "c"), ("d",), ("e",), ("f",)]
    assert dag.components(DIAMOND) == [("a",), ("b",), ("c",), ("d",)]


def test_ancestry_with_targets_and_through() -> None:
    deps = {"a": (), "b": ("a",), "c": ("b",), "x": (), "y": ("x", "c")}
    ancestry = dag.Ancestry(deps, targets={"a", "x"})
    assert ancestry.is_upstream("a", "c") and ancestry.is_upstream("x", "y")
    assert not ancestry.is_upstream("x", "c")
    with pytest.raises(KeyError):
        ancestry.is_upstream("b", "c")  # not a target
    upstream = ancestry.through(("c",))
    assert "a" in upstream and "x" not in upstream and "c" not in upstream  # c is no target
    assert "x" in ancestry.through(("c", "x")) and "a" not in ancestry.through(("x",))


def test_through_a_cycle_includes_the_node_itself() -> None:
    # A node's dependency on a cycle it belongs to leads back to the node: it is upstream of itself.
    deps = {"a": ("c",), "b": ("a",), "c": ("b",), "d": ("c",)}
    ancestry = dag.Ancestry(deps)
    assert all(node in ancestry.through(deps["a"]) for node in "abc")
    assert "d" not in ancestry.through(deps["a"])
    assert not ancestry.is_upstream("a", "a")


def test_ancestry_agrees_with_upstream_on_random_graphs() -> None:
    generator = random.Random(12)
    for _ in range(200):
        nodes = [f"n{i}" for i in range(generator.randint(1, 12))]
        deps = {
            node: tuple(generator.sample(nodes, generator.randint(0, min(3, len(nodes))))) for node in nodes
        }
        ancestry = dag.Ancestry(deps)
        for b in nodes:
            ups = dag.upstream(deps, b)
            assert {a for a in nodes if ancestry.is_upstream(a, b)} == ups, deps
            reach = ancestry.through(deps[b])
            expected = set(deps[b]).union(*(dag.upstream(deps, dep) | {dep} for dep in deps[b]))
            assert {a for a in nodes if a in reach} == expected, deps


def test_10000_node_cycle_ancestry() -> None:
    deps = chain(10_000)
    deps["n0"] = ("n9999",)
    deps["tail"] = ("n5000",)
    deps["side"] = ()
    ancestry = dag.Ancestry(deps)
    assert ancestry.is_upstream("n9999", "n0") and ancestry.is_upstream("n1", "n0")
    assert ancestry.is_upstream("n7000", "tail") and not ancestry.is_upstream("tail", "n7000")
    assert not ancestry.is_upstream("side", "tail")
    assert len(dag.components(deps)) == 3

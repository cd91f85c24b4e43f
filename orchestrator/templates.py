"""`${ ... }` templates in node configs: a hand-written tokenizer, a recursive-descent parser, an evaluator.

Grammar of the text between `${` and `}`::

    expr    := cmp ('||' cmp)*
    cmp     := unary (('==' | '!=') unary)?
    unary   := '!' unary | '(' expr ')' | operand
    operand := path | "string" | 'string' | number | true | false | null
    path    := input ('.' seg)* | nodes '.' node-id '.' output ('.' seg)* | instance '.' (id | externalId)
             | item ('.' seg)* | index

`item` and `index` name a map's item and its position; the definition validator accepts them only in
the body of a map node.

A segment is `[A-Za-z0-9_-]+`. Paths are looked up only in dicts (by key) and lists (by index), never as
attributes, so `input.__class__` is merely a key that is not there; nothing here uses eval or getattr.
`$${` writes a literal `${`; a `$` not followed by `{` is literal text. `!` and `(` nest at most
`MAX_NESTING` deep. Parsing is linear in the text (definitions arrive from clients, up to the body limit).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import TemplateError

ROOTS = ("input", "nodes", "instance", "item", "index")
# the roots a map's item body may use besides the others
ITEM_ROOTS = frozenset({"item", "index"})
_KEYWORDS: dict[str, Any] = {"true": True, "false": False, "null": None}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<op>\|\||==|!=|!|\(|\)|\.|\})
    |(?P<str>"(?:[^"\\]|\\["'\\nt])*"|'(?:[^'\\]|\\["'\\nt])*')
    |(?P<num>-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_-]))
    |(?P<word>[A-Za-z0-9_-]+)""",
    re.VERBOSE,
)
_OPEN = re.compile(r"\$\$\{|\$\{")  # `$${` first: it is the escape for a literal `${`
# Right after a '.', a segment is a segment even when it looks like a number (`items.0.1`).
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# `!` and `(` nest by recursion: a bound keeps `${!!!...}` a TemplateError rather than a RecursionError.
MAX_NESTING = 64


@dataclass(frozen=True)
class LiteralNode:
    value: Any


@dataclass(frozen=True)
class PathNode:
    segments: tuple[str, ...]  # root first

    @property
    def text(self) -> str:
        return ".".join(self.segments)


@dataclass(frozen=True)
class NotNode:
    operand: Expr


@dataclass(frozen=True)
class CompareNode:
    op: str  # "==" or "!="
    left: Expr
    right: Expr


@dataclass(frozen=True)
class OrNode:
    items: tuple[Expr, ...]


Expr = LiteralNode | PathNode | NotNode | CompareNode | OrNode


@dataclass(frozen=True)
class _Missing:
    """A path that did not resolve, kept as a value so `||` can fall back and the error can name it."""

    path: str


@dataclass(frozen=True)
class _Token:
    kind: str  # "str", "num", "word", or the operator itself ("||", ".", "}", ...)
    value: Any
    pos: int


def _fail(text: str, message: str, pos: int) -> TemplateError:
    return TemplateError(f"template '{text}': {message} at position {pos}")


def _found(token: _Token) -> str:
    return "the end of the expression" if token.kind == "}" else repr(token.value)


def _tokenize(text: str, start: int) -> list[_Token]:
    """Tokens of one expression from `start` (just after `${`) up to and including its closing `}`.

    Raises TemplateError on an unexpected character, a bad string literal or a missing `}`.
    """
    tokens: list[_Token] = []
    pos = start
    while pos < len(text):
        if tokens and tokens[-1].kind == "." and (seg := _SEGMENT.match(text, pos)):
            tokens.append(_Token("word", seg.group(), pos))
            pos = seg.end()
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            bad_string = text[pos] in "'\""
            what = "unterminated string or bad escape" if bad_string else f"unexpected {text[pos]!r}"
            raise _fail(text, what, pos)
        raw, kind = m.group(), m.lastgroup or ""
        if kind == "str":
            tokens.append(_Token(kind, re.sub(r"\\(.)", lambda e: _ESCAPES[e.group(1)], raw[1:-1]), pos))
        elif kind == "num":
            tokens.append(_Token(kind, float(raw) if "." in raw else int(raw), pos))
        elif kind != "ws":
            tokens.append(_Token("word" if kind == "word" else raw, raw, pos))
            if raw == "}":
                return tokens
        pos = m.end()
    raise _fail(text, "unterminated '${'", start - 2)


class _Parser:
    """Recursive descent over one expression's tokens; each method consumes exactly its grammar rule."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text, self.tokens, self.i = text, tokens, 0
        self.depth = 0
        self.node_refs: set[str] = set()
        self.roots: set[str] = set()

    def take(self) -> _Token:
        # Only parse() consumes the closing '}', so no rule can run off the end of the list.
        self.i += 1
        return self.tokens[self.i - 1]

    def accept(self, *kinds: str) -> _Token | None:
        return self.take() if self.tokens[self.i].kind in kinds else None

    def error(self, message: str, token: _Token) -> TemplateError:
        return _fail(self.text, message, token.pos)

    def parse(self) -> Expr:
        if self.tokens[0].kind == "}":
            raise self.error("empty expression '${}'", self.tokens[0])
        expr = self.expr()
        if not self.accept("}"):
            token = self.tokens[self.i]
            raise self.error(f"expected '||', '==', '!=' or '}}' but found {_found(token)}", token)
        return expr

    def expr(self) -> Expr:
        items = [self.cmp()]
        while self.accept("||"):
            items.append(self.cmp())
        return items[0] if len(items) == 1 else OrNode(tuple(items))

    def cmp(self) -> Expr:
        left = self.unary()
        op = self.accept("==", "!=")
        return CompareNode(op.kind, left, self.unary()) if op else left

    def unary(self) -> Expr:
        token = self.accept("!", "(")
        if token is None:
            return self.operand()
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"more than {MAX_NESTING} nested '!' and '('", token)
        if token.kind == "!":
            inner = self.unary()
        else:
            inner = self.expr()
            if not self.accept(")"):
                raise self.error(f"expected ')' but found {_found(self.tokens[self.i])}", self.tokens[self.i])
        self.depth -= 1
        return NotNode(inner) if token.kind == "!" else inner

    def operand(self) -> Expr:
        token = self.take()
        if token.kind in ("str", "num"):
            return LiteralNode(token.value)
        if token.kind != "word":
            raise self.error(f"expected a value but found {_found(token)}", token)
        if token.value in _KEYWORDS:
            return LiteralNode(_KEYWORDS[token.value])
        if token.value not in ROOTS:
            raise self.error(
                f"unknown name '{token.value}' (paths start with input, nodes, instance, item or index)",
                token,
            )
        segments = [token.value]
        while self.accept("."):
            seg = self.take()
            if seg.kind != "word":
                raise self.error(f"expected a path segment after '.' but found {_found(seg)}", seg)
            segments.append(seg.value)
        path = PathNode(tuple(segments))
        self.roots.add(segments[0])
        if segments[0] == "nodes":
            if len(segments) < 3 or segments[2] != "output":
                raise self.error(f"'{path.text}': a node path is nodes.<node-id>.output[.<key>...]", token)
            self.node_refs.add(segments[1])
        if segments[0] == "instance" and segments[1:] not in (["id"], ["externalId"]):
            raise self.error(f"'{path.text}': only instance.id and instance.externalId exist", token)
        if segments[0] == "index" and len(segments) > 1:
            raise self.error(f"'{path.text}': index is a number and has no fields", token)
        return path


def _lookup(scope: dict[str, Any], path: PathNode) -> Any:
    current: Any = scope
    for seg in path.segments:
        if isinstance(current, dict) and seg in current:
            current = current[seg]
        elif isinstance(current, list) and seg.isdigit() and int(seg) < len(current):
            current = current[int(seg)]
        else:
            return _Missing(path.text)
    return current


def truthy(value: Any) -> bool:
    """JavaScript truthiness: missing, None, False, 0, NaN, "", [] and {} are false, all else true."""
    if isinstance(value, _Missing) or value is None or (isinstance(value, float) and value != value):
        return False
    return bool(value) if isinstance(value, bool | int | float | str | list | dict) else True


def _json_equal(a: Any, b: Any) -> bool:
    # Python says True == 1, also inside lists and dicts; JSON equality keeps booleans apart from numbers.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _evaluate(node: Expr, scope: dict[str, Any]) -> Any:
    """The value of `node`; a `_Missing` when the result is a path that did not resolve."""
    if isinstance(node, LiteralNode):
        return node.value
    if isinstance(node, PathNode):
        return _lookup(scope, node)
    if isinstance(node, NotNode):
        return not truthy(_evaluate(node.operand, scope))
    if isinstance(node, CompareNode):
        left, right = (_evaluate(side, scope) for side in (node.left, node.right))
        left, right = (None if isinstance(v, _Missing) else v for v in (left, right))
        return _json_equal(left, right) == (node.op == "==")
    result: Any = None
    for item in node.items:  # `||`: the first truthy item, else the last one, as in JavaScript
        result = _evaluate(item, scope)
        if truthy(result):
            break
    return result


def to_text(value: Any) -> str:
    """How a value reads inside a longer string: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Template:
    """A parsed string: literal text and expressions in order. Immutable, so cached parses can be shared."""

    text: str
    parts: tuple[str | Expr, ...]
    node_refs: frozenset[str]  # node ids referenced through nodes.<id>.output...
    roots: frozenset[str] = frozenset()  # the first segment of every path: input, nodes, instance

    @property
    def is_template(self) -> bool:
        """True when the string holds at least one `${...}` (an escaped `$${` is not one)."""
        return any(not isinstance(part, str) for part in self.parts)

    @property
    def is_whole_value(self) -> bool:
        """True when the string is exactly one `${...}` and nothing else: the result keeps its JSON type."""
        return len(self.parts) == 1 and not isinstance(self.parts[0], str)

    def _value(self, expr: str | Expr, scope: dict[str, Any]) -> Any:
        value = expr if isinstance(expr, str) else _evaluate(expr, scope)
        if isinstance(value, _Missing):
            raise TemplateError(f"template '{self.text}': path '{value.path}' does not resolve")
        return value

    def render(self, scope: dict[str, Any]) -> Any:
        """The whole-value result with its own type, or the interpolated string.

        Raises TemplateError naming the path when an expression's result is a path that does not resolve.
        """
        if self.is_whole_value:
            # A copy, so an executor that mutates its config cannot reach into another node's output.
            return copy.deepcopy(self._value(self.parts[0], scope))
        return "".join(to_text(self._value(part, scope)) for part in self.parts)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Template:
    """Parse a string holding zero or more `${...}`; cached, as every node run renders the same strings.

    Raises TemplateError naming the template and the position of the first problem.
    """
    parts: list[str | Expr] = []
    refs: set[str] = set()
    roots: set[str] = set()
    literal: list[str] = []  # pieces joined once: adding to a string per `$${` would be quadratic
    pos = 0
    while match := _OPEN.search(text, pos):
        literal.append(text[pos : match.start()])
        if match.group() == "$${":
            literal.append("${")
            pos = match.end()
            continue
        if chunk := "".join(literal):
            parts.append(chunk)
        tokens = _tokenize(text, match.end())
        parser = _Parser(text, tokens)
        parts.append(parser.parse())
        refs |= parser.node_refs
        roots |= parser.roots
        literal, pos = [], tokens[-1].pos + 1
    literal.append(text[pos:])
    rest = "".join(literal)
    if rest or not parts:
        parts.append(rest)
    return Template(text, tuple(parts), frozenset(refs), frozenset(roots))


def render(value: Any, scope: dict[str, Any]) -> Any:
    """A new structure with every string in `value` rendered (dict keys are not); other values pass through.

    Raises TemplateError on the first malformed template or unresolved path.
    """
    if isinstance(value, str):
        return parse(value).render(scope)
    if isinstance(value, dict):
        return {key: render(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, scope) for item in value]
    return value


def evaluate_condition(text: str, scope: dict[str, Any]) -> bool:
    """Whether a node's `when` holds. Raises TemplateError only when `text` does not parse.

    A whole-value template gives its JS truthiness. A path that does not resolve makes the condition false
    rather than an error: `when` asks a question ("did the lookup return a manager?") and "no" is an answer.
    Plain and interpolated strings: "false" and "" are false, anything else ("true" included) is true.
    """
    template = parse(text)
    values = [part if isinstance(part, str) else _evaluate(part, scope) for part in template.parts]
    if any(isinstance(value, _Missing) for value in values):
        return False
    if template.is_whole_value:
        return truthy(values[0])
    return "".join(to_text(value) for value in values) not in ("", "false")


def strings_in(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(location, string) for every string in a nested JSON value, e.g. ("config.data[0]", "${...}"),
    in document order; iterative, so a deep value costs no recursion."""
    stack = [(where, value)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, str):
            yield at, item
        elif isinstance(item, dict):
            stack.extend((f"{at}.{key}", child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{at}[{k}]", child) for k, child in reversed(list(enumerate(item))))


def check(value: Any, where: str = "config") -> list[tuple[str, str]]:
    """(location, message) for every string in `value` that does not parse; never raises."""
    problems = []
    for location, text in strings_in(value, where):
        try:
            parse(text)
        except TemplateError as exc:
            problems.append((location, exc.message))
    return problems


def node_refs(value: Any) -> frozenset[str]:
    """Every node id referenced through `nodes.<id>...` anywhere in `value`; malformed strings are ignored."""
    refs: set[str] = set()
    for _, text in strings_in(value, ""):
        with contextlib.suppress(TemplateError):
            refs |= parse(text).node_refs
    return frozenset(refs)


def roots(value: Any) -> frozenset[str]:
    """The roots (`input`, `nodes`, `instance`) of every path anywhere in `value`; malformed strings
    are ignored. A node whose templates name no `input` need not load the instance's input."""
    found: set[str] = set()
    for _, text in strings_in(value, ""):
        with contextlib.suppress(TemplateError):
            found |= parse(text).roots
    return frozenset(found)

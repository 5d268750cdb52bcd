"""Prompt templates: Jinja in a sandbox that bounds what a template reaches and how much work it does.

Prompts come from spec files, which travel in pull requests, and are rendered for every row. The sandbox (no
loader) refuses attribute tricks, ``{% include %}`` and ``{% import %}``; on top of it every rendering is metered:
its loops take at most ``MAX_STEPS`` steps in all, no value it makes or prints holds more than ``MAX_TEXT``
characters (a list counts its items' characters), the prompt itself is at most ``MAX_TEXT`` characters, and the
values it makes add up to at most ``MAX_WORK`` characters. What would grow past a bound (``'A' * 10**9``, a width
of ``10**9``, a join of a long list) is refused before it is built.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import lru_cache, wraps
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

MAX_TEXT = 1_000_000
"""The most characters of a rendered prompt, and of any value a template makes."""
MAX_STEPS = 100_000
"""The most loop steps of one rendering, every loop together."""
MAX_WORK = 50_000_000
"""The most characters the values of one rendering may add up to."""
MAX_INT_BITS = 100_000
"""The largest integer a template may compute, in bits."""
_LOOP, _CONCAT = "ftbench_loop", "ftbench_concat"
_LOADS = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


class PromptLimitError(Exception):
    """A rendering that would pass one of the bounds; the message says which (``runs loops of ...``)."""


_METER: ContextVar[list[int]] = ContextVar("ftbench_prompt_meter")
"""The current rendering's loop steps and work so far."""


def _charge(steps: int, work: int) -> None:
    meter = _METER.get(None)
    if meter is None:
        return
    meter[0] += steps
    meter[1] += work
    if meter[0] > MAX_STEPS:
        raise PromptLimitError(f"runs loops of more than {MAX_STEPS} steps in all")
    if meter[1] > MAX_WORK:
        raise PromptLimitError(f"makes values of more than {MAX_WORK} characters in all")


def _weight(value: Any) -> int:
    """How many characters ``value`` holds (a container: its items' characters and one per item), counted up to a
    little past ``MAX_TEXT``."""
    total, stack = 0, [value]
    while stack and total <= MAX_TEXT:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(list(item.items())[: MAX_TEXT + 1])
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(list(item)[: MAX_TEXT + 1])
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 8 + 1
        else:
            total += 1
    return total


def _bounded(size: int, what: str = "a value") -> None:
    if size > MAX_TEXT:
        raise PromptLimitError(f"makes {what} of more than {MAX_TEXT} characters")


def _sized(value: Any) -> Any:
    """``value`` when it is within the bounds (its weight charged as work)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise PromptLimitError(f"computes an integer of more than {MAX_INT_BITS} bits")
    weight = _weight(value)
    _charge(0, weight)
    _bounded(weight)
    return value


def _widths(template: str, args: Iterable[Any]) -> None:
    """Refuse a format string (``%`` or ``str.format``) whose widths, or the numbers given for ``*`` widths, pass
    ``MAX_TEXT``."""
    if any(int(digits) > MAX_TEXT for digits in re.findall(r"\d+", template)):
        raise PromptLimitError(f"formats a field wider than {MAX_TEXT} characters")
    if ("*" in template or "{" in template) and any(_number(a) and abs(a) > MAX_TEXT for a in args):
        raise PromptLimitError(f"formats a field wider than {MAX_TEXT} characters")


def _number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _replaced_size(text: str, old: str, new: str) -> int:
    hits = text.count(old)
    return len(text) + hits * (len(new) - len(old))


def _joined_size(separator: str, items: list[Any]) -> int:
    return sum(_weight(item) for item in items) + len(separator) * max(len(items) - 1, 0)


def _str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a ``str`` method call whose result would pass ``MAX_TEXT``; return its arguments (a joined iterable
    read once)."""
    values = [*args, *kwargs.values()]
    if name in ("center", "ljust", "rjust", "zfill") and values and _number(values[0]):
        _bounded(values[0])
    elif name == "expandtabs":
        _bounded(len(text) + text.count("\t") * max((v for v in values if _number(v)), default=8))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _bounded(_replaced_size(text, args[0], args[1]))
    elif name == "join" and args:
        items = list(args[0])
        _bounded(_joined_size(text, items))
        return (items, *args[1:])
    elif name in ("format", "format_map"):
        mapped = [value for arg in args if isinstance(arg, dict) for value in arg.values()]
        _widths(text, [*args, *mapped, *kwargs.values()])
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        _bounded(len(text) * max(longest, 1))
    return args


def _filter_check(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a built-in filter whose result would pass ``MAX_TEXT``, before it runs."""
    values = [*args, *kwargs.values()]
    numbers = [v for v in values if _number(v)]
    if name in ("center", "batch", "slice", "truncate") and numbers:
        _bounded(max(numbers))
    elif name == "indent":
        width = values[0] if values else 4
        size = len(width) if isinstance(width, str) else width if _number(width) else 4
        _bounded(_weight(value) + (str(value).count("\n") + 1) * size)
    elif name == "wordwrap":
        wrap = kwargs.get("wrapstring", args[2] if len(args) > 2 else None)
        _bounded(_weight(value) * (1 + (len(wrap) if isinstance(wrap, str) else 1)))
    elif name == "replace" and len(args) >= 2:
        _bounded(_replaced_size(str(value), str(args[0]), str(args[1])))
    elif name == "join":
        _bounded(_joined_size(str(values[0]) if values else "", list(value)))
    elif name == "format":
        _widths(str(value), values)
    elif name == "tojson" and numbers and max(numbers) > 64:
        raise PromptLimitError("indents JSON by more than 64 spaces")


def _metered_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter with its input, arguments and result checked against the bounds."""
    skip = 1 if _PassArg.from_obj(function) is not None else 0

    @wraps(function)
    def metered(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[skip], args[skip + 1 :]
        for given in (value, *rest, *kwargs.values()):
            _bounded(_weight(given))
        if name == "join":  # read an iterable once, for the check and the join
            value = list(value)
            args = (*args[:skip], value, *rest)
        _filter_check(name, value, rest, kwargs)
        return _sized(function(*args, **kwargs))

    return metered


def _loop(iterable: Any) -> Iterator[Any]:
    """A loop's items, each step charged."""
    for item in iterable:
        _charge(1, 0)
        yield item


def _concat(parts: list[Any]) -> str:
    """``a ~ b``: the parts as text, refused when it would pass ``MAX_TEXT``."""
    _bounded(sum(_weight(part) for part in parts))
    return _sized("".join(str(part) for part in parts))


class _Metered(NodeTransformer):
    """Every loop's items through ``_loop`` and every ``~`` through ``_concat``; recursive loops refused."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        if node.recursive:
            raise TemplateSyntaxError("a prompt may not use recursive loops", node.lineno)
        node.iter = nodes.Call(nodes.Name(_LOOP, "load"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.Name(_CONCAT, "load"), [nodes.List(node.nodes)], [], None, None, lineno=node.lineno)


class _PromptSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every loop, operator, call, filter and printed value metered."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, finalize=_sized)
        self.filters = {name: _metered_filter(name, function) for name, function in self.filters.items()}
        self.globals.pop("lipsum", None)
        self.globals.update({_LOOP: _loop, _CONCAT: _concat})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = _Metered().visit(super()._parse(source, name, filename))
        assert isinstance(tree, nodes.Template)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """An intercepted operator, refused before it builds what would pass the bounds."""
        sizes = [_weight(side) for side in (left, right)]
        if operator == "*" and _number(left) and _number(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise PromptLimitError(f"computes an integer of more than {MAX_INT_BITS} bits")
        elif operator == "*" and (_number(left) or _number(right)):
            count = left if _number(left) else right
            _bounded(sizes[1 if count is left else 0] * max(count, 0))
        elif operator == "**" and _number(left) and _number(right) and abs(left) > 1 and right > 0:
            if right * abs(left).bit_length() > MAX_INT_BITS:
                raise PromptLimitError(f"computes an integer of more than {MAX_INT_BITS} bits")
        elif operator == "%" and isinstance(left, str):
            _widths(left, right if isinstance(right, tuple) else [right])
        elif operator == "+":
            _bounded(sum(sizes))
        return _sized(super().call_binop(context, operator, left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """A call from the template (a function or a method), refused before it builds what would pass the
        bounds."""
        target = getattr(obj, "__wrapped__", obj)
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):
            args = _str_method(owner, getattr(target, "__name__", ""), args, kwargs)
        for given in (*args, *kwargs.values()):
            _bounded(_weight(given))
        return _sized(super().call(context, obj, *args, **kwargs))


SANDBOX = _PromptSandbox()


@lru_cache(maxsize=64)
def compiled(source: str) -> Template:
    """The template of ``source``, compiled once.

    Raises:
        TemplateError: it does not parse, or uses what the sandbox refuses at parse time.
    """
    return SANDBOX.from_string(source)


def render(source: str, row: dict[str, Any]) -> str:
    """``source`` rendered over ``row``'s fields, within the bounds.

    Raises:
        PromptLimitError: the rendering would pass a bound.
        TemplateError: the template fails (a missing field, a refused attribute).
    """
    token = _METER.set([0, 0])
    try:
        parts, length = [], 0
        for part in compiled(source).generate(**row):
            length += len(part)
            _bounded(length, "a prompt")
            parts.append(part)
        return "".join(parts)
    finally:
        _METER.reset(token)


def parse(source: str) -> nodes.Template:
    """The syntax tree of ``source`` as the sandbox compiles it (loops and ``~`` metered).

    Raises:
        TemplateSyntaxError: it does not parse, or uses a recursive loop.
    """
    return SANDBOX.parse(source)


def check_template(source: str) -> str:
    """Refuse, when a spec is read, a prompt template that the sandbox would refuse when rendering: one that does not
    parse, loads another template, names a private attribute (``__init__``, ``_x``) or loops recursively. Names
    built at render time are still refused by the sandbox then, before any model loads.

    Raises:
        ValueError: naming what the template may not do.
    """
    if "{{" not in source and "{%" not in source:
        return source
    try:
        tree = parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"not a usable template ({exc.message}, line {exc.lineno})") from None
    if next(tree.find_all(_LOADS), None) is not None:
        raise ValueError("a template may not include, import or extend another; use only the row's fields")
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name = _attribute_name(node)
        if isinstance(name, str) and name.startswith("_"):
            raise ValueError(f"the template reaches {name!r}, which templates may not; use only the row's fields")
    return source


def _attribute_name(node: nodes.Node) -> object:
    """The attribute a ``x.name``, ``x['name']`` or ``x|attr('name')`` node names, when written out in the template."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem):
        return getattr(node.arg, "value", None)
    if isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        return getattr(node.args[0], "value", None)
    return None

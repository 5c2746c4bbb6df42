"""The tag and segment language: a tiny boolean grammar, parsed by hand and checked before use.

Pure: no I/O. ``parse`` turns text into a checked tree or raises ``ExpressionError`` naming the
column (1-based, in characters) and what was expected there; ``insight.compiler`` turns the tree
into one set-based Ibis expression. The grammar (docs/segments.md, ADR 0010)::

    expression := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" expression ")" | subject [comparison]
    subject    := NAME | NAME "(" [argument ("," argument)*] ")"
    argument   := NAME "=" literal | literal
    comparison := ("=" | "!=" | "<" | "<=" | ">" | ">=") literal
                | ["not"] "in" "(" literal ("," literal)* ")"
    literal    := STRING | NUMBER | "true" | "false"

Keywords are lower case; strings are in double or single quotes (``\\"`` escapes a quote) and may
hold any text (``"榴莲"``); numbers are decimals (``500``, ``99.5``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from memberops.insight.rules import LAYER_ORDER, RFM_CLASS_NAMES, Stage
from memberops.kit.errors import ValidationFailed

#: The longest expression accepted (a nightly job, not a query language for documents).
MAX_LENGTH = 4000
#: How deeply ``not`` and parentheses may nest.
MAX_DEPTH = 40


class ExpressionError(ValidationFailed):
    """An expression that cannot be read or does not make sense; the message names the column."""

    code = "invalid_expression"


def _fail(position: int, message: str, **details: object) -> ExpressionError:
    return ExpressionError(f"at column {position + 1}: {message}", column=position + 1, **details)


# ---------------------------------------------------------------------------------------- tokens


class Kind(StrEnum):
    NAME = "name"
    STRING = "string"
    NUMBER = "number"
    OPERATOR = "operator"
    PUNCTUATION = "punctuation"
    END = "end"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    position: int
    value: str | Decimal | None = None

    def describe(self) -> str:
        if self.kind is Kind.END:
            return "the end of the expression"
        return f'"{self.text}"'


_SPACE = re.compile(r"\s+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an END token; raise on a character that starts none."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        space = _SPACE.match(text, position)
        if space:
            position = space.end()
            continue
        character = text[position]
        if character in "\"'":
            tokens.append(_string(text, position))
            position += len(tokens[-1].text)
            continue
        name = _NAME.match(text, position)
        if name:
            tokens.append(Token(Kind.NAME, name.group(), position))
            position = name.end()
            continue
        number = _NUMBER.match(text, position)
        if number:
            tokens.append(Token(Kind.NUMBER, number.group(), position, Decimal(number.group())))
            position = number.end()
            continue
        operator = next((op for op in _OPERATORS if text.startswith(op, position)), None)
        if operator:
            tokens.append(Token(Kind.OPERATOR, operator, position))
            position += len(operator)
            continue
        if character in "(),":
            tokens.append(Token(Kind.PUNCTUATION, character, position))
            position += 1
            continue
        raise _fail(position, f'unexpected character "{character}"', found=character)
    tokens.append(Token(Kind.END, "", len(text)))
    return tokens


def _string(text: str, start: int) -> Token:
    quote = text[start]
    position = start + 1
    value: list[str] = []
    while position < len(text):
        character = text[position]
        if character == "\\" and position + 1 < len(text) and text[position + 1] in (quote, "\\"):
            value.append(text[position + 1])
            position += 2
            continue
        if character == quote:
            return Token(Kind.STRING, text[start : position + 1], start, "".join(value))
        value.append(character)
        position += 1
    raise _fail(start, f"the string starting here has no closing {quote}", expected=quote)


# ------------------------------------------------------------------------------------------ tree


Literal = str | Decimal | bool


@dataclass(frozen=True)
class Subject:
    """An attribute (``tier``) or a function call (``bought(category="榴莲", days=90)``)."""

    name: str
    position: int
    call: bool = False
    arguments: dict[str, Literal] = field(default_factory=dict)
    positional: tuple[Literal, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """``subject OP value`` or ``subject [not] in (values)``; a bare subject is ``truth``."""

    subject: Subject
    operator: str  # = != < <= > >= in "not in", or "truth" for a subject standing alone
    values: tuple[Literal, ...] = ()


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class Both:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Either:
    items: tuple[Node, ...]


Node = Comparison | Not | Both | Either


# ---------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, word: str) -> bool:
        return self.current.kind is Kind.NAME and self.current.text == word

    def at(self, text: str) -> bool:
        return self.current.kind in (Kind.PUNCTUATION, Kind.OPERATOR) and self.current.text == text

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.expected(f'"{text}"')
        return self.advance()

    def expected(self, what: str) -> ExpressionError:
        token = self.current
        return _fail(
            token.position, f"expected {what}, found {token.describe()}", expected=what, found=token.text
        )

    def parse(self) -> Node:
        node = self.disjunction()
        if self.current.kind is not Kind.END:
            raise self.expected('"and", "or" or the end of the expression')
        return node

    def disjunction(self) -> Node:
        items = [self.conjunction()]
        while self.at_keyword("or"):
            self.advance()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Either(tuple(items))

    def conjunction(self) -> Node:
        items = [self.unary()]
        while self.at_keyword("and"):
            self.advance()
            items.append(self.unary())
        return items[0] if len(items) == 1 else Both(tuple(items))

    def unary(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail(self.current.position, f"the expression nests deeper than {MAX_DEPTH} levels")
        try:
            if self.at_keyword("not"):
                self.advance()
                return Not(self.unary())
            if self.at("("):
                self.advance()
                node = self.disjunction()
                self.expect(")")
                return node
            return self.comparison()
        finally:
            self.depth -= 1

    def comparison(self) -> Comparison:
        subject = self.subject()
        token = self.current
        if token.kind is Kind.OPERATOR:
            self.advance()
            return Comparison(subject, token.text, (self.literal(),))
        if self.at_keyword("in"):
            self.advance()
            return Comparison(subject, "in", self.literal_list())
        if self.at_keyword("not") and self.tokens[self.index + 1].text == "in":
            self.advance()
            self.advance()
            return Comparison(subject, "not in", self.literal_list())
        return Comparison(subject, "truth")

    def subject(self) -> Subject:
        token = self.current
        if token.kind is not Kind.NAME or token.text in KEYWORDS:
            raise self.expected('a name such as "tier", "bought(…)" or "not", or "("')
        self.advance()
        if not self.at("("):
            return Subject(token.text, token.position)
        self.advance()
        arguments: dict[str, Literal] = {}
        positional: list[Literal] = []
        if not self.at(")"):
            while True:
                argument = self.current
                if (
                    argument.kind is Kind.NAME
                    and argument.text not in KEYWORDS
                    and self.tokens[self.index + 1].text == "="
                ):
                    self.advance()
                    self.advance()
                    if argument.text in arguments:
                        raise _fail(argument.position, f'argument "{argument.text}" is given twice')
                    arguments[argument.text] = self.literal()
                else:
                    if arguments:
                        raise _fail(argument.position, "a value without a name cannot follow named arguments")
                    positional.append(self.literal())
                if self.at(","):
                    self.advance()
                    continue
                break
        self.expect(")")
        return Subject(token.text, token.position, True, arguments, tuple(positional))

    def literal(self) -> Literal:
        token = self.current
        if token.kind is Kind.STRING or token.kind is Kind.NUMBER:
            self.advance()
            assert token.value is not None
            return token.value
        if self.at_keyword("true") or self.at_keyword("false"):
            self.advance()
            return token.text == "true"
        raise self.expected('a value (a "string", a number, true or false)')

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect("(")
        values = [self.literal()]
        while self.at(","):
            self.advance()
            values.append(self.literal())
        self.expect(")")
        return tuple(values)


# ---------------------------------------------------------------------------- meaning (checking)


class ValueType(StrEnum):
    TEXT = "text"
    COUNT = "count"  # a whole number
    YUAN = "yuan"  # an amount with at most two decimals
    DATE = "date"  # "YYYY-MM-DD"
    FLAG = "flag"  # true / false: the subject stands alone


@dataclass(frozen=True)
class AttributeSpec:
    """What an attribute holds and, for a closed set, which values it takes (aliases map to codes)."""

    value_type: ValueType
    help: str
    choices: dict[str, str] | None = None


def _codes(*codes: str) -> dict[str, str]:
    return {code: code for code in codes}


RFM_CHOICES = {code.value: code.value for code in RFM_CLASS_NAMES} | {
    name: code.value for code, name in RFM_CLASS_NAMES.items()
}
STAGE_CHOICES = _codes(*(stage.value for stage in Stage))
LAYER_CHOICES = _codes(*(layer.code for layer in LAYER_ORDER))

ATTRIBUTES: dict[str, AttributeSpec] = {
    "member": AttributeSpec(ValueType.FLAG, "is a member now"),
    "status": AttributeSpec(
        ValueType.TEXT, "membership: member (now) or cancelled (was one)", _codes("member", "cancelled")
    ),
    "join_date": AttributeSpec(ValueType.DATE, "business date of the latest membership spell's start"),
    "days_since_join": AttributeSpec(ValueType.COUNT, "days from the latest join to the as-of date"),
    "join_channel": AttributeSpec(ValueType.TEXT, "field the latest spell was joined in (mini_program…)"),
    "city": AttributeSpec(ValueType.TEXT, "city of the home store (the store the member joined at)"),
    "birthday_month": AttributeSpec(ValueType.COUNT, "month of the recorded birthday, 1–12"),
    "tier": AttributeSpec(ValueType.TEXT, "current tier code (standard, silver, gold…)"),
    "points": AttributeSpec(ValueType.COUNT, "points balance"),
    "plan": AttributeSpec(
        ValueType.TEXT,
        "paid plan: active, expiring (ends within 30 days) or expired",
        _codes("active", "expiring", "expired"),
    ),
    "days_since_purchase": AttributeSpec(ValueType.COUNT, "days since the last purchase day"),
    "rfm": AttributeSpec(ValueType.TEXT, "RFM class over the trailing 12 months (code or 中文)", RFM_CHOICES),
    "stage": AttributeSpec(ValueType.TEXT, "lifecycle stage on the as-of date", STAGE_CHOICES),
    "layer": AttributeSpec(ValueType.TEXT, "relationship layer of the as-of date's month", LAYER_CHOICES),
    "preferred": AttributeSpec(
        ValueType.TEXT, "preferred product category over the trailing 12 months, or mixed (a category name)"
    ),
}


@dataclass(frozen=True)
class FunctionSpec:
    """A behaviour function: its named arguments and their types, and what it returns."""

    returns: ValueType
    help: str
    arguments: dict[str, ValueType]
    positional: tuple[str, ...] = ()  # names the positional arguments fill, in order
    required: tuple[str, ...] = ()


FUNCTIONS: dict[str, FunctionSpec] = {
    "bought": FunctionSpec(
        ValueType.COUNT,
        "purchases (orders, net of full refunds), optionally of a category or sku, in the last N days",
        {"category": ValueType.TEXT, "sku": ValueType.TEXT, "days": ValueType.COUNT},
    ),
    "purchase_days": FunctionSpec(
        ValueType.COUNT, "distinct purchase days in the last N days", {"days": ValueType.COUNT}
    ),
    "spent": FunctionSpec(ValueType.YUAN, "net spend in yuan in the last N days", {"days": ValueType.COUNT}),
    "followed": FunctionSpec(
        ValueType.FLAG, "follows now (official_account, live_room… or any field)", {"field": ValueType.TEXT}
    ),
    "joined_group": FunctionSpec(ValueType.FLAG, "is in a group chat now", {"field": ValueType.TEXT}),
    "reviewed": FunctionSpec(
        ValueType.COUNT,
        "reviews written in the last N days, optionally rated at least min_rating",
        {"days": ValueType.COUNT, "min_rating": ValueType.COUNT},
    ),
    "shared": FunctionSpec(ValueType.COUNT, "shares in the last N days", {"days": ValueType.COUNT}),
    "visited": FunctionSpec(
        ValueType.COUNT,
        "visits of a field (or any) in the last N days",
        {"field": ValueType.TEXT, "days": ValueType.COUNT},
    ),
    "tag": FunctionSpec(ValueType.FLAG, "holds the tag", {"name": ValueType.TEXT}, ("name",), ("name",)),
}

_ORDERING = frozenset({"<", "<=", ">", ">="})


def _literal_text(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value)
    return f'"{value}"'


def _check_value(value: Literal, value_type: ValueType, where: int, what: str) -> Literal:
    """Return ``value`` in its checked form (a date as ISO text, yuan as Decimal), or raise."""
    if value_type in (ValueType.TEXT, ValueType.DATE):
        if not isinstance(value, str):
            raise _fail(where, f"{what} takes a string in quotes, not {_literal_text(value)}")
        if value_type is ValueType.DATE:
            try:
                parsed = date.fromisoformat(value) if len(value) == 10 else None
            except ValueError:
                parsed = None
            if parsed is None:
                raise _fail(where, f'{what} takes a date "YYYY-MM-DD", not "{value}"')
            return parsed.isoformat()
        return value
    if isinstance(value, bool) or not isinstance(value, Decimal):
        raise _fail(where, f"{what} takes a number, not {_literal_text(value)}")
    if value_type is ValueType.COUNT and value != value.to_integral_value():
        raise _fail(where, f"{what} takes a whole number, not {value}")
    if value_type is ValueType.YUAN:
        try:
            if value.quantize(Decimal("0.01")) != value:
                raise _fail(where, f"{what} takes yuan with at most two decimals, not {value}")
        except InvalidOperation:
            raise _fail(where, f"{what} is too large: {value}") from None
    return value


def _check_comparison(node: Comparison) -> Comparison:
    subject = node.subject
    if subject.call:
        function = FUNCTIONS.get(subject.name)
        if function is None:
            raise _fail(
                subject.position,
                f'unknown function "{subject.name}"; known: {", ".join(sorted(FUNCTIONS))}',
                expected=sorted(FUNCTIONS),
                found=subject.name,
            )
        if len(subject.positional) > len(function.positional):
            raise _fail(subject.position, f"{subject.name}(…) takes named arguments only, like days=90")
        arguments = dict(zip(function.positional, subject.positional, strict=False)) | subject.arguments
        checked: dict[str, Literal] = {}
        for name, value in arguments.items():
            if name not in function.arguments:
                known = ", ".join(function.arguments)
                raise _fail(subject.position, f'{subject.name}(…) has no argument "{name}"; it takes {known}')
            value_type = function.arguments[name]
            checked_value = _check_value(value, value_type, subject.position, f"{subject.name}({name}=…)")
            if isinstance(checked_value, Decimal) and checked_value < 1:
                raise _fail(subject.position, f"{subject.name}({name}=…) must be at least 1")
            checked[name] = checked_value
        for name in function.required:
            if name not in checked:
                raise _fail(subject.position, f'{subject.name}(…) needs "{name}"')
        subject = Subject(subject.name, subject.position, True, checked)
        value_type = function.returns
        label = f"{subject.name}(…)"
        choices = None
    else:
        attribute = ATTRIBUTES.get(subject.name)
        if attribute is None:
            hint = " (a function needs parentheses)" if subject.name in FUNCTIONS else ""
            raise _fail(
                subject.position,
                f'unknown attribute "{subject.name}"{hint}; known: {", ".join(sorted(ATTRIBUTES))}',
                expected=sorted(ATTRIBUTES),
                found=subject.name,
            )
        value_type = attribute.value_type
        label = subject.name
        choices = attribute.choices
    if node.operator == "truth":
        if value_type is ValueType.TEXT or value_type is ValueType.DATE or value_type is ValueType.YUAN:
            example = "spent(days=180) >= 500" if value_type is ValueType.YUAN else f'{label} = "…"'
            raise _fail(subject.position, f"{label} needs a comparison, e.g. {example}")
        if value_type is ValueType.COUNT and not subject.call:
            raise _fail(subject.position, f"{label} needs a comparison, e.g. {label} >= 1")
        return Comparison(subject, "truth")
    if value_type is ValueType.FLAG:
        raise _fail(subject.position, f"{label} is true or false: use it alone or with not")
    if node.operator in _ORDERING and value_type is ValueType.TEXT:
        raise _fail(subject.position, f"{label} can only be compared with =, !=, in or not in")
    values = tuple(_check_value(value, value_type, subject.position, label) for value in node.values)
    if choices is not None:
        mapped = []
        for value in values:
            assert isinstance(value, str)
            if value not in choices:
                raise _fail(
                    subject.position,
                    f'{label} has no value "{value}"; it takes {", ".join(sorted(set(choices.values())))}',
                    found=value,
                )
            mapped.append(choices[value])
        values = tuple(mapped)
    return Comparison(subject, node.operator, values)


def check(node: Node) -> Node:
    """Return the tree with every name, argument and value checked (aliases mapped to codes)."""
    if isinstance(node, Comparison):
        return _check_comparison(node)
    if isinstance(node, Not):
        return Not(check(node.item))
    if isinstance(node, Both):
        return Both(tuple(check(item) for item in node.items))
    return Either(tuple(check(item) for item in node.items))


def parse(text: str) -> Node:
    """Parse and check an expression; raise ``ExpressionError`` (with the column) if it is not valid."""
    if not text.strip():
        raise ExpressionError("the expression is empty", column=1)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters", column=MAX_LENGTH + 1)
    return check(_Parser(text).parse())


def tags_named(node: Node) -> set[str]:
    """Return the names of the tags an expression reads (``tag("…")``)."""
    if isinstance(node, Comparison):
        if node.subject.name == "tag" and node.subject.call:
            return {str(node.subject.arguments["name"])}
        return set()
    if isinstance(node, Not):
        return tags_named(node.item)
    return set().union(*(tags_named(item) for item in node.items))


def compare(left: Decimal, operator: str, values: tuple[Literal, ...]) -> bool:
    """Evaluate a numeric comparison in Python (used to know whether 0 satisfies it)."""
    numbers = [Decimal(str(value)) for value in values]
    match operator:
        case "=":
            return left == numbers[0]
        case "!=":
            return left != numbers[0]
        case "<":
            return left < numbers[0]
        case "<=":
            return left <= numbers[0]
        case ">":
            return left > numbers[0]
        case ">=":
            return left >= numbers[0]
        case "in":
            return left in numbers
        case "not in":
            return left not in numbers
        case "truth":
            return left > 0
    raise AssertionError(operator)

"""A safe arithmetic evaluator for answers written as equations ("(84 / 2)"): a recursive-descent
parser over decimal numbers, + - * /, unary minus and parentheses, never Python's eval."""
from __future__ import annotations

import math
import re

_MAX_EXPRESSION_DEPTH = 100  # parentheses nesting; deeper input is refused, not recursed into


def evaluate_expression(text: str) -> float:
    """The value of an arithmetic expression: decimal numbers (no commas), + - * /, unary minus,
    parentheses; the usual precedence, left-associative. A recursive-descent parser, never
    Python's eval. Raises ValueError naming the problem and its position on malformed input
    (empty, unknown character, unbalanced parentheses, missing operand, division by zero)."""
    return _ExpressionParser(text).parse()


def _quote(text: str, limit: int = 80) -> str:
    """`text` quoted for an error message, shortened: a degenerate label can be very long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class _ExpressionParser:
    """expression := term (("+" | "-") term)*;  term := factor (("*" | "/") factor)*;
    factor := "-" factor | number | "(" expression ")"."""

    _TOKEN = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)|(?P<symbol>[-+*/()])")

    def __init__(self, text: str) -> None:
        self.text = text
        self.quoted = _quote(text)
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, position)
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position == len(text):
                break
            match = self._TOKEN.match(text, position)
            if match is None:
                raise ValueError(f"unexpected character {text[position]!r} at position {position} in {self.quoted}")
            kind = match.lastgroup
            self.tokens.append((kind, match.group(kind), position))
            position = match.end()
        self.index = 0
        self.depth = 0

    def parse(self) -> float:
        if not self.tokens:
            raise ValueError(f"empty expression {self.quoted}")
        self._check_parentheses()
        value = self._expression()
        if self.index < len(self.tokens):
            _, token, position = self.tokens[self.index]
            raise ValueError(f"unexpected {token!r} at position {position} in {self.quoted}")
        if not math.isfinite(value):
            raise ValueError(f"expression {self.quoted} does not have a finite value")
        return value

    def _check_parentheses(self) -> None:
        """Report unbalanced parentheses up front, with the position of the culprit."""
        open_positions: list[int] = []
        for kind, token, position in self.tokens:
            if token == "(":
                open_positions.append(position)
            elif token == ")":
                if not open_positions:
                    raise ValueError(f"unbalanced parentheses: ')' at position {position} has no "
                                     f"matching '(' in {self.quoted}")
                open_positions.pop()
        if open_positions:
            raise ValueError(f"unbalanced parentheses: '(' at position {open_positions[-1]} is "
                             f"never closed in {self.quoted}")

    def _peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def _expression(self) -> float:
        value = self._term()
        while self._peek() in ("+", "-"):
            operator = self.tokens[self.index][1]
            self.index += 1
            operand = self._term()
            value = value + operand if operator == "+" else value - operand
        return value

    def _term(self) -> float:
        value = self._factor()
        while self._peek() in ("*", "/"):
            _, operator, position = self.tokens[self.index]
            self.index += 1
            operand = self._factor()
            if operator == "*":
                value *= operand
            elif operand == 0:
                raise ValueError(f"division by zero at position {position} in {self.quoted}")
            else:
                value /= operand
        return value

    def _factor(self) -> float:
        if self.index >= len(self.tokens):
            raise ValueError(f"expression {self.quoted} ends where a number was expected")
        kind, token, position = self.tokens[self.index]
        self.index += 1
        if kind == "number":
            return float(token)
        if token == "-":
            return -self._factor()
        if token == "(":
            self.depth += 1
            if self.depth > _MAX_EXPRESSION_DEPTH:
                raise ValueError(f"parentheses nested deeper than {_MAX_EXPRESSION_DEPTH} in {self.quoted}")
            value = self._expression()
            self.index += 1  # the matching ")": balance was checked up front
            self.depth -= 1
            return value
        raise ValueError(f"expected a number at position {position}, got {token!r} in {self.quoted}")

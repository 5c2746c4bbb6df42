"""What a member is about to buy, as the checkout rules see it (values only, no I/O).

A cart line carries the list price per unit; member prices, coupons and points are worked out by
``pricing.quote``. Amounts are integer fen; ``at`` is an aware instant whose business date (in the
brand's time zone) decides coupon validity, the member day and the birthday month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

#: The most units one line may carry, and the most lines one cart may have: anything larger is a typo.
MAX_QUANTITY = 1_000_000
MAX_LINES = 500
#: The most a single line may cost (ten million yuan), so every sum fits a 64-bit column.
MAX_LINE_FEN = 1_000_000_000


@dataclass(frozen=True)
class CartLine:
    """One line: ``quantity`` units of ``sku`` at ``unit_price_fen`` each (the list price)."""

    line_no: int
    sku: str
    category: str
    quantity: int
    unit_price_fen: int

    @property
    def list_fen(self) -> int:
        """The line's total at list price."""
        return self.unit_price_fen * self.quantity


@dataclass(frozen=True)
class Cart:
    """The lines, where (channel and store) and when the member buys, and the delivery fee if any."""

    lines: tuple[CartLine, ...]
    channel: str
    at: datetime
    store: str | None = None
    delivery_fen: int = 0


@dataclass(frozen=True)
class PricedLine:
    """A line after member prices: ``amount_fen`` is what the coupons and points apply to."""

    line_no: int
    sku: str
    category: str
    amount_fen: int


def cart_rejection_reason(cart: Cart) -> str | None:
    """Say why ``cart`` cannot be priced (empty, duplicate line numbers, bad amounts), or None."""
    if cart.at.tzinfo is None:
        return "the time of the purchase must say its UTC offset"
    if not cart.lines:
        return "the cart has no lines"
    if len(cart.lines) > MAX_LINES:
        return f"the cart has {len(cart.lines)} lines, more than {MAX_LINES}"
    if not 0 <= cart.delivery_fen <= MAX_LINE_FEN:
        return f"the delivery fee must be 0 to {MAX_LINE_FEN} fen"
    seen: set[int] = set()
    for line in cart.lines:
        if line.line_no in seen:
            return f"line {line.line_no} appears twice"
        seen.add(line.line_no)
        if line.line_no < 1:
            return f"line numbers start at 1, not {line.line_no}"
        if not line.sku or not line.category:
            return f"line {line.line_no} needs a sku and a category"
        if not 1 <= line.quantity <= MAX_QUANTITY:
            return f"line {line.line_no}: the quantity must be 1 to {MAX_QUANTITY}, not {line.quantity}"
        if line.unit_price_fen < 0 or line.list_fen > MAX_LINE_FEN:
            return f"line {line.line_no}: a price of zero or more, a line of at most {MAX_LINE_FEN} fen"
    return None


def sorted_lines(lines: Sequence[CartLine]) -> tuple[CartLine, ...]:
    """Return the lines by line number, the one order every rule walks them in."""
    return tuple(sorted(lines, key=lambda line: line.line_no))

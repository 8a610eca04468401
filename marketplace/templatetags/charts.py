"""{% chart fig "id" "what it shows" %}: embed a plotly Figure without inline code.

The figure travels as JSON in a <script type="application/json"> block (escaped like
json_script) and static/js/charts.js draws every [data-figure] element with the plotly.js
the project serves itself, so the pages work offline and charts can be swapped in later
(the round page does, when a round finishes).
"""
from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from config import money

register = template.Library()
_JSON_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


@register.simple_tag
def chart(fig, element_id: str, label: str):
    if fig is None:
        return ""
    data = mark_safe(fig.to_json().translate(_JSON_ESCAPES))
    return format_html(
        '<figure class="chart"><div class="plot" id="{}" data-figure="{}-data" role="img" aria-label="{}">'
        '<noscript>This chart needs JavaScript; the table has the same numbers.</noscript></div>'
        '<script type="application/json" id="{}-data">{}</script></figure>',
        element_id, element_id, label, element_id, data)



@register.filter
def num(value, places=5):
    """A fixed-point number for tables: {{ x|num:5 }}. floatformat's Decimal round trip costs ~30 µs a
    cell, which a 1,000-row table notices; None shows as a dash."""
    if value is None or value == "":
        return "—"
    return f"{float(value):.{int(places)}f}"


@register.filter
def pct(share, places=0):
    """A share in [0, 1] as a percentage: {{ p.share|pct }} -> "75%"."""
    if share is None:
        return "—"
    return f"{float(share) * 100:.{int(places)}f}%"


@register.filter
def amount(value, places=2):
    """Money in its currency's minor unit: {{ p.amount|amount:round.decimals }} or {{ x|amount:"JPY" }}."""
    return money.amount_format(value, places)

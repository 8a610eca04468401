from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


@register.filter
def payout_label(weights) -> str:
    """A reward round's payout objective: 'helpfulness' or '0.5 × helpfulness + 0.5 × harmlessness'."""
    from valuation.objectives import payout_label as label

    return label(weights) if weights else ""


@register.filter
def duration(seconds):
    """Seconds as a person reads them (estimates.duration_text); None is "no measurement yet"."""
    from valuation.estimates import duration_text

    return duration_text(seconds)

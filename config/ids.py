"""Random primary keys for objects whose ids owners see (contributions, rounds, fidelity reports, pairs).

A sequential id tells whoever sees two of them how many objects were created in between: an owner
who uploads twice would learn how many files every other owner uploaded meanwhile. These ids are
drawn uniformly from [2^40, 2^53): 13 to 16 digits, exact in a JavaScript number, no order, no count.
They stay integers, so the fixed API paths (`/api/contributions/{id}/`, `/api/rounds/{id}/`) and every
`<int:...>` route keep their shape. With 2^53 − 2^40 ≈ 9·10^15 values, a collision among a million rows
has a probability of about 10^-4 in total; the unique primary key turns one into an IntegrityError
rather than a silent overwrite (an upload whose pair ids clash is stored again with fresh ones:
marketplace/services.py).
"""
import secrets

LOW, HIGH = 1 << 40, 1 << 53


def random_id() -> int:
    return LOW + secrets.randbelow(HIGH - LOW)

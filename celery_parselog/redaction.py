"""Redaction of sensitive values in a run's log, before a line is written to the spool file.

A run's log is stored beside the data and read by people who may not be allowed to
see personal data or credentials that a task happened to log: an e-mail address in a
message, a card number in an exception, a connection password in a URL, a token in a
repr of request headers. :class:`Redactor` rewrites the final text of each record
(message with its arguments, exception and traceback text, or a whole JSON line) so
that such values become ``[REDACTED:<name>]`` before the text is encoded, so nothing
unredacted ever reaches the disk.

Entries
-------
A redactor is built from a list of entries (the ``CELERY_PARSELOG_REDACT`` setting):

* a **built-in name** from :data:`BUILTIN_NAMES`, such as ``"email"``. Built-in names
  are bare lower-case identifiers (``[a-z][a-z0-9_]*``);
* anything else is a **regular expression**, compiled as it is (use inline flags such
  as ``(?i)`` for options). Its matches become ``[REDACTED:pattern]``; when it has a
  group named ``secret``, only that group is replaced, so
  ``(?i)password[=:]\\s*(?P<secret>\\S+)`` keeps the word ``password``.

A bare lower-case identifier that is not a built-in name is an error, not a regular
expression for that word: a typo such as ``"emial"`` must not silently redact nothing.
To redact a literal lower-case word, write it so it is not a bare identifier, for
example ``\\bemial\\b``. A built-in name in another case or with spaces around it
(``"SSN"``) is an error for the same reason, and so is a regular expression that can
match the empty string, since it would match everywhere.

Built-ins
---------
``ssn``
    US social security numbers: ``123-45-6789`` anywhere; ``123456789`` and
    ``123 45 6789`` only right after a word such as ``ssn``, ``social security``,
    ``tax id`` or ``tin`` (``"ssn": "123456789"``, ``ssn=123456789``), because bare
    nine-digit numbers (byte counts, ids) are common in logs. Numbers that cannot be
    issued are left alone: area 000, 666 or 900-999, group 00, serial 0000.
``email``
    Addresses with a dotted domain and a letter top-level domain.
``phone``
    North American numbers: ``(212) 555-0123``, ``212-555-0123``, ``212.555.0123``,
    ``+1 212 555 0123``, ``+12125550123``, ``1-212-555-0123``. Area code and exchange
    start with 2-9. Space-separated ``212 555 0123`` and bare ``2125550123`` count only
    after a word such as ``phone``, ``tel``, ``mobile`` or ``fax``: ten-digit order
    numbers and space-separated counts would be redacted otherwise.
``card``
    Payment card numbers: 13 to 19 digits, contiguous or in groups of four (or the
    4-6-5 and 4-6-4 groups of Amex and Diners), separated by spaces or dashes, with
    the prefix and length of a card network and a valid Luhn check digit.
``aws_key``
    AWS access key ids (``AKIA``/``ASIA`` and 16 upper-case letters or digits), and
    40-character secret access keys right after a word containing ``secret``
    (``aws_secret_access_key=``, ``"SecretAccessKey": "``). A 40-character value made
    of hexadecimal digits only is a hash, not an AWS secret, and is left alone.
``jwt``
    JSON web tokens: three base64url segments, the first starting with ``eyJ``.
``auth_header``
    The credential of an ``Authorization`` (or ``Proxy-Authorization``) header as it
    appears in header dumps, reprs and JSON, keeping the scheme word:
    ``Authorization: Bearer [REDACTED:auth_header]``; and a ``Bearer`` token of 16
    characters or more anywhere.
``url_password``
    The password of a URL: ``redis://user:[REDACTED:url_password]@host:6379/0``.
``secrets``
    Exact values registered at run time with :func:`register_secret`, such as a
    connection password the project knows; replaced by ``[REDACTED:<their name>]``.
``identifiers`` (opt-in: not in :data:`DEFAULT_REDACT`)
    Values of records about people, by shape alone, for logs of parsers of such
    records: any run of nine or more digits (SSNs in any range, case and account
    numbers); eight digits that are a date (``YYYYMMDD``, ``MMDDYYYY``) and dates
    written ``YYYY-MM-DD`` or ``MM/DD/YYYY`` with no time after them; SSNs with spaces
    or dashes in any range; case numbers of capitals and digits (9 to 12 characters,
    four digits or more); digit-substituted SSNs (nine capitals, digits and
    ``@#$%&*`` with such a symbol, or after the word SSN); and any token of capitals,
    digits and those symbols that is mostly digits, such as a raw fixed-width record
    line, masked whole with its blank-separated pieces. Timestamps, fractions of
    decimal numbers, UUIDs, hashes and numbers of up to seven digits are left.

How it stays fast
-----------------
:meth:`Redactor.redact` is called for every record, and most records hold nothing to
redact, so the path without a match is the one that is tuned. Every pattern is
compiled once, when the redactor is built, and each built-in gets a cheap check that
rules most lines out before its pattern runs:

* ``ssn``, ``phone`` and ``card`` share one pattern, which only runs when the line
  holds four digits right after a digit or one of `` -.)`` (every form has that; an
  ISO timestamp does not), and then only over the run of digits and separators
  around each such place, not the whole line. The pattern begins with one character
  class, so the engine skips from digit to digit in C. Rules awkward in a pattern
  (SSN ranges, card networks and Luhn, the keyword before a bare number) are
  checked in Python, on candidates only.
* The other built-ins run only when the line holds a substring they cannot match
  without (``@``, ``://``, ``eyJ``, ``AKIA``, ``uthorization``, ...), tested with
  ``in``, and then only from just before its first occurrence. E-mail addresses and
  URL passwords are found from their ``@`` and ``://`` rather than by trying a
  pattern at every letter of the line.
* ``identifiers`` first maps the line's bytes to the kind of each character with
  ``bytes.translate`` and looks for a run of eight codes or a separated value with
  ``find`` and ``count``; its patterns run only when one is there.
* When nothing is replaced, the very object passed in is returned: no copy is made.

Order: registered secrets first (so their own names win), then numbers, URL
passwords, e-mail addresses, ``Authorization`` credentials, JWTs, AWS keys,
identifiers, and last the regular-expression entries, each on the output of the one
before. Markers hold nothing a later step matches. In a line that starts with ``{``
(a JSON line), a marker put where a bare JSON number stood is written as a string,
so the line stays valid JSON.

Outside log lines, :func:`redact_json` redacts task arguments as one JSON text (keys
and numbers included) and :func:`redact_value` one value with the name it came from
as context, for subjects and key fields.

Known trade-offs
----------------
* Precision over recall where a value has no shape of its own: bare nine- and
  ten-digit numbers are SSNs or phone numbers only after a keyword, so an unlabelled
  ``123456789`` stays; a 40-character AWS secret is only recognised after a word
  containing ``secret``; phone numbers are North American only; digits are ASCII
  digits only.
* Some numbers look like cards: a random 16-digit id starting with 4 passes the Luhn
  check one time in ten and is then redacted, and so can four-digit counts written
  in a row (``2386 8452 1784 1207``). Epoch times in milliseconds or microseconds
  start with 1, which no card network uses, and are never taken for cards.
* Celery node names with a dotted host (``celery@ip-10-0-0-1.ec2.internal``) and
  ``git@github.com:...`` look like e-mail addresses and are redacted.
* URL passwords end at ``/``, whitespace or a quote: a password holding a raw ``/``
  (not written ``%2F``), or a quote in plain text, is not recognised.
* Only the credential after an ``Authorization`` scheme is redacted; the further
  parameters of ``Digest`` or ``AWS4-HMAC-SHA256`` credentials (``Signature=``) stay.
* JSON lines: a redacted span never starts or ends inside a backslash escape, so
  the line stays valid JSON, and a value right after an escape
  (``\\njane@example.com``) is still found. In plain text, a literal backslash
  followed by ``n``, ``t``, ``r``, ``b`` or ``f`` right before a value is treated
  the same way, which may leave one character of the value visible.
* Registered secrets are matched as exact text, also in their JSON-escaped,
  repr-escaped and percent-encoded forms; any other transformation of the value
  (base64, a hash) is not recognised. They must be at least
  :data:`MIN_SECRET_LENGTH` characters long, so a short value cannot blank out
  ordinary words. The registry is per process: prefork children inherit what was
  registered before they were forked.
* Regular-expression entries have no cheap check: each scans every line in full.
"""

from __future__ import annotations

import functools
import json
import re
import string
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUILTIN_NAMES",
    "DEFAULT_REDACT",
    "MIN_SECRET_LENGTH",
    "OPT_IN_NAMES",
    "Redactor",
    "cached_redactor",
    "entry_problem",
    "forget_secrets",
    "redact_json",
    "redact_value",
    "register_secret",
]

BUILTIN_NAMES: tuple[str, ...] = (
    "ssn",
    "email",
    "phone",
    "card",
    "aws_key",
    "jwt",
    "auth_header",
    "url_password",
    "secrets",
    "identifiers",
)
# Every built-in but ``identifiers``, which masks by shape alone (any nine digits, any
# date that is not a timestamp's) and is chosen by projects whose logs are about people.
OPT_IN_NAMES: tuple[str, ...] = ("identifiers",)
DEFAULT_REDACT: list[str] = [name for name in BUILTIN_NAMES if name not in OPT_IN_NAMES]
MIN_SECRET_LENGTH = 8

_CUSTOM_NAME = "pattern"
_SECRET_GROUP = "secret"
_BUILTIN_SHAPE = re.compile(r"[a-z][a-z0-9_]*")
_SECRET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _marker(name: str) -> str:
    return f"[REDACTED:{name}]"


# -- Spans that keep JSON valid ----------------------------------------------------------


def _escapes_next(text: str, index: int) -> bool:
    """Whether the backslash at ``index`` opens an escape (an odd run of backslashes ends there)."""
    run = 0
    while index >= 0 and text[index] == "\\":
        run += 1
        index -= 1
    return run % 2 == 1


def _clip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink a span so it neither starts inside a backslash escape nor ends on its backslash.

    In a JSON line ``\\n`` is two characters; replacing only the ``n`` would leave a
    lone backslash before the marker and break the line. Patterns may start on an
    escape's letter (so that a value right after ``\\n`` is found at all), and the
    span is moved past the escape here.
    """
    if 0 < start < end and text[start - 1] == "\\" and _escapes_next(text, start - 1):
        start += 5 if text[start] == "u" else 1
    if end > start and text[end - 1] == "\\" and _escapes_next(text, end - 1):
        end -= 1
    return start, end


_Span = tuple[int, int, str]  # start, end, built-in name
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _bare_json_value(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a whole number of a JSON line, outside any string.

    A marker put there is written as a string, so ``{"ssn": 123456789}`` stays valid
    JSON. Only checked for lines that start with ``{`` and only for spans that stand
    between JSON punctuation, so ordinary text is never scanned.
    """
    before = text[:start].rstrip(" ")
    after = text[end:].lstrip(" ")
    if not before or before[-1] not in ":[," or (after and after[0] not in ",]}"):
        return False
    # Past the last whole string before the span, an opening quote means it is inside one.
    last_string_end = 0
    for literal in _JSON_STRING.finditer(text, 0, start):
        last_string_end = literal.end()
    return '"' not in text[last_string_end:start]


def _scan(
    pattern: re.Pattern[str],
    text: str,
    choose: Callable[[re.Match[str]], _Span | None],
    spans: list[_Span],
    *,
    pos: int = 0,
    endpos: int | None = None,
) -> None:
    """Add to ``spans`` the span ``choose`` picks in each match between ``pos`` and ``endpos``.

    After a match ``choose`` turns down (a number failing Luhn, say), the search goes
    on from the next character rather than after the match, so a value overlapping a
    rejected candidate is still found: ``1200 4111 1111 1111 1111`` first offers
    ``1200 4111 1111 1111``, then the card.
    """
    if endpos is None:
        endpos = len(text)
    while True:
        match = pattern.search(text, pos, endpos)
        if match is None:
            return
        chosen = choose(match)
        if chosen is None or chosen[0] >= chosen[1]:
            pos = match.start() + 1
            continue
        spans.append(chosen)
        pos = max(match.end(), match.start() + 1)


def _substitute(text: str, spans: list[_Span]) -> str:
    """``text`` with each span (in order, not overlapping) replaced by its marker.

    Spans are clipped to whole backslash escapes first. Returning the very object
    passed in when nothing is replaced lets the caller skip any copy.
    """
    pieces: list[str] = []
    last = 0
    json_line = text.startswith("{")
    for chosen_start, chosen_end, name in spans:
        start, end = _clip(text, chosen_start, chosen_end)
        if start >= end:
            continue
        pieces.append(text[last:start])
        marker = _marker(name)
        if json_line and _bare_json_value(text, start, end):
            marker = f'"{marker}"'
        pieces.append(marker)
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


# -- Number rules, checked in Python on candidates only ------------------------------------

_SEPARATORS = str.maketrans("", "", " -.()+")


def _digits(candidate: str) -> str:
    return candidate.translate(_SEPARATORS)


def _valid_ssn(digits: str) -> bool:
    """Nine digits that could be an issued SSN: not area 000, 666 or 9xx, group 00, serial 0000."""
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _valid_nanp(digits: str) -> bool:
    """Ten digits (or eleven with a leading 1) whose area code and exchange start with 2-9."""
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and digits[0] >= "2" and digits[3] >= "2"


_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def _luhn(digits: str) -> bool:
    kept = sum(map(int, digits[-1::-2]))
    doubled = sum(_LUHN_DOUBLED[int(ch)] for ch in digits[-2::-2])
    return (kept + doubled) % 10 == 0


# (lowest prefix, highest prefix, lengths) of the card networks, prefixes as digit strings
# of equal length; a number belongs to a network when its first digits fall in the range.
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("2200", "2204", frozenset(range(16, 20))),  # Mir
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("300", "305", frozenset(range(14, 20))),  # Diners Club
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    ("3528", "3589", frozenset(range(16, 20))),  # JCB
    ("6011", "6011", frozenset(range(16, 20))),  # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("50", "50", frozenset(range(13, 20))),  # Maestro
    ("56", "58", frozenset(range(13, 20))),
    ("63", "63", frozenset(range(13, 20))),
    ("67", "67", frozenset(range(13, 20))),
)


def _valid_card(digits: str) -> bool:
    """A card network's prefix and length, and a valid Luhn check digit."""
    length = len(digits)
    for low, high, lengths in _CARD_RANGES:
        if length in lengths and low <= digits[: len(low)] <= high:
            return _luhn(digits)
    return False


# A value may start after anything but a word character or a character that would make
# it part of a longer number or token; or right after a backslash escape such as the
# \n of a JSON line, whose letter is a word character.
def _after(forbidden: str) -> str:
    return rf"(?:(?<=\\[nrtbf])|(?<!{forbidden}))"


def _after_first(forbidden: str) -> str:
    """:func:`_after`, written for use once the value's first character is consumed."""
    return rf"(?:(?<=\\[nrtbf].)|(?<!{forbidden}.))"


# A keyword, an optional "number" after it, then a short separator right up to the
# value: ``ssn=``, ``"phone": "``, ``SSN is ``, ``\"mobile_phone_number\": \"``.
# Matched against the lower-cased text just before a bare number.
_KEYWORD_END = r"(?:[\s_-]?(?:number|num|no|nr))?(?![a-z])(?:[^\w\n]{1,8}|\s+(?:is|was)\s+)\Z"
_SSN_WORDS = ("ssn", "social", "tax", "tin")
_SSN_CONTEXT = re.compile(
    _after("[a-z]")
    + r"(?:ssn|social[\s_-]?security|tax[\s_-]?id|taxpayer[\s_-]?id|itin|tin)"
    + _KEYWORD_END
)
_PHONE_WORDS = ("phone", "tel", "mobile", "cell", "fax", "msisdn", "sms")
_PHONE_CONTEXT = re.compile(
    _after("[a-z]") + r"(?:phone|telephone|tel|mobile|cell|cellphone|fax|msisdn|sms)" + _KEYWORD_END
)
_CONTEXT_WINDOW = 48


def _after_keyword(words: tuple[str, ...], context: re.Pattern[str], text: str, start: int) -> bool:
    """Whether the text just before ``start`` ends with a keyword and a short separator.

    Bare numbers are common (ids, sizes), so the words are looked for with ``in``
    first; the pattern only runs when one of them is near.
    """
    window = text[max(0, start - _CONTEXT_WINDOW) : start].lower()
    for word in words:
        if word in window:
            return context.search(window) is not None
    return False


_Check = Callable[[re.Match[str], int], str | None]


def _card(match: re.Match[str], start: int) -> str | None:
    return "card" if _valid_card(_digits(match.group())) else None


def _ssn(match: re.Match[str], start: int) -> str | None:
    return "ssn" if _valid_ssn(_digits(match.group())) else None


def _labelled_ssn(match: re.Match[str], start: int) -> str | None:
    """A spaced or bare SSN counts only right after an SSN keyword."""
    text = match.string
    if _valid_ssn(_digits(match.group())) and _after_keyword(_SSN_WORDS, _SSN_CONTEXT, text, start):
        return "ssn"
    return None


def _labelled_phone(match: re.Match[str], start: int) -> str | None:
    """A space-separated or bare phone number counts only right after a phone keyword."""
    text = match.string
    digits = _digits(match.group())
    if _valid_nanp(digits) and _after_keyword(_PHONE_WORDS, _PHONE_CONTEXT, text, start):
        return "phone"
    return None


def _bare_number(match: re.Match[str], start: int) -> str | None:
    """Nine digits may be a labelled SSN; ten, or 1 and ten, a labelled phone number."""
    if match.end() - match.start() == 9:
        return _labelled_ssn(match, start)
    return _labelled_phone(match, start)


# -- Numbers: ssn, phone and card in one pattern -------------------------------------------

# The pattern begins with the single class [\d(+], which lets the engine skip from one
# possible first character to the next in C; the boundary before the value is checked
# once that character is consumed (two characters of look-behind), and each form says
# in a look-behind which first character it needs. Compiled with re.ASCII: digits are
# 0-9 only.
_NUMBER_START = r"[\d(+]" + _after_first(r"[\w.+\-]")
_NUMBER_END = r"(?![\w+]|[.\-]\d)"

# (form id, pattern after the first character, built-in or "" for either, check).
_NUMBER_FORMS: tuple[tuple[str, str, str, _Check | None], ...] = (
    (
        "phone_one",
        r"(?<=1)(?P<p1>[-. ])[2-9]\d\d(?P=p1)[2-9]\d\d(?P=p1)\d{4}",
        "phone",
        None,
    ),
    ("phone_one_paren", r"(?<=1)[ -]?\([2-9]\d\d\)[ ]?[2-9]\d\d[-. ]?\d{4}", "phone", None),
    ("ssn_dash", r"(?<=\d)\d\d-\d\d-\d{4}", "ssn", _ssn),
    ("phone_dash", r"(?<=[2-9])\d\d(?P<pd>[-.])[2-9]\d\d(?P=pd)\d{4}", "phone", None),
    (
        "card_fours",
        r"(?<=[2-6])\d{3}(?P<c4>[ -])\d{4}(?P=c4)\d{4}(?P=c4)\d{1,4}(?:(?P=c4)\d{1,3})?",
        "card",
        _card,
    ),
    ("card_amex", r"(?<=3)\d{3}(?P<c6>[ -])\d{6}(?P=c6)\d{4,5}", "card", _card),
    ("card_run", r"(?<=[2-6])\d{12,18}", "card", _card),
    ("bare_run", r"(?<=\d)\d{8,10}", "", _bare_number),
    ("ssn_spaced", r"(?<=\d)\d\d \d\d \d{4}", "ssn", _labelled_ssn),
    ("phone_spaced", r"(?<=[2-9])\d\d [2-9]\d\d \d{4}", "phone", _labelled_phone),
    ("phone_paren", r"(?<=\()[2-9]\d\d\)[ ]?[2-9]\d\d[-. ]?\d{4}", "phone", None),
    (
        "phone_plus",
        r"(?<=\+)1[-. ]?(?:\([2-9]\d\d\)[ ]?|[2-9]\d\d[-. ]?)[2-9]\d\d[-. ]?\d{4}",
        "phone",
        None,
    ),
)

# Every form above holds four digits right after a digit or one of " -.)" (its last
# group, or the inside of a longer run), and most log lines hold none: an ISO
# timestamp does not. This is looked for first, at a third of the cost of the numbers
# pattern. Every form is also made only of the characters in _RUN_CHARS, so the
# numbers pattern runs only over the run of those characters around each trigger
# match, not over the rest of the line.
_NUMBER_TRIGGER = re.compile(r"[0-9][0-9 \-.)][0-9][0-9][0-9][0-9]")
_RUN_CHARS = frozenset("0123456789 ().+-")
_RUN = re.compile(r"[0-9 ().+\-]*")

# -- The other built-ins --------------------------------------------------------------------

# URL passwords are found from each "://" that follows a scheme: what comes after it is
# matched in place. The user part may hold "@" (an e-mail address as user name); the
# password ends at the last "@" before whitespace, "/" or a quote, so a raw "@" in a
# password is covered. Backslash escapes in it (a JSON-escaped quote) are part of it.
_URL_USERINFO = re.compile(
    r"[^\s/:\"'<>]{0,256}:(?!\[REDACTED:)(?P<v_url>(?:[^\s/\"'<>\\]|\\[^nrtbfu\s]){1,256})@"
)
_SCHEME_CHARS = frozenset(string.ascii_letters + string.digits + "+.-")

_SCHEMES = (
    r"(?i:bearer|basic|token|digest|negotiate|ntlm|apikey|api-key|jwt|dpop|hoba|mutual"
    r"|vapid|aws4-hmac-sha256)"
)
# Tokens hold no quote or backslash; stopping there ends the credential at the closing
# quote of a header in a repr, a JSON line or JSON nested in a JSON string.
_CREDENTIAL = r"[^\s\"',;\\<>{}\[\]()]+"
# The header name, then ":" or "=" among quotes (reprs, JSON, escaped JSON), then an
# optional scheme word that is kept. A scheme word alone is never taken for the credential.
# Like the other gated patterns, each begins with a plain character class and checks
# the character before it afterwards, so the engine tests the class before anything else.
_AUTH_HEADER = (
    "[AaPp]"
    + _after_first("[A-Za-z\\-]")
    + r"(?i:(?<=p)roxy-authorization|(?<=a)uthorization)[\"'\\]{0,2}\s*[:=]\s*[\"'\\]{0,2}"
    + rf"(?:{_SCHEMES}\s+)?(?!\[REDACTED:)(?!{_SCHEMES}(?:\s|$))(?P<v_auth>{_CREDENTIAL})"
)
_BEARER = (
    "[Bb]"
    + _after_first("[A-Za-z]")
    + r"(?i:earer)\s+(?!\[REDACTED:)(?P<v_bearer>[A-Za-z0-9._~+/\-]{16,}=*)"
)
_AUTH_GATES = ("uthorization", "UTHORIZATION", "earer", "EARER")
_AUTH_REACH = 7  # "proxy-authorization" holds "uthorization" 7 characters in

# Literal "eyJ" first so the engine can jump between occurrences; boundary checked after.
_JWT = (
    r"eyJ(?:(?<=\\[nrtbf]eyJ)|(?<![\w\-]eyJ))[A-Za-z0-9_\-]{8,8192}"
    r"\.[A-Za-z0-9_\-]{8,65536}\.[A-Za-z0-9_\-]*"
)

_AWS_ID = "A" + _after_first("[A-Za-z0-9]") + r"(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])"
_AWS_SECRET = (
    r"[Ss](?i:ecret)[A-Za-z_]{0,24}[\s\"'\\:=]{1,6}"
    r"(?P<v_awssecret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_HEX = re.compile(r"[0-9a-fA-F]+")


def _aws_secret(match: re.Match[str], start: int) -> str | None:
    """Forty hexadecimal digits are a hash (SHA-1), never an AWS secret access key."""
    return None if _HEX.fullmatch(match.string, start, start + 40) else "aws_key"


# E-mail addresses are found from their "@": the domain with an anchored match, the
# local part by a match over the reversed text just before. A pattern that has to find
# where the local part starts would be tried at every letter of the line.
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w\-])")
_EMAIL_LOCAL_REVERSED = re.compile(r"[\w.%+\-]{1,65}")
_LONGEST_LOCAL = 64


# -- Steps ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Form:
    """One alternative of a pass: the built-in it reports, its value group, its check."""

    name: str
    value_group: str | None = None
    check: _Check | None = None


@dataclass(frozen=True)
class _Step:
    """One scan of the text, which runs only when the text holds one of its ``gates``.

    ``reach`` says how far before the first gate a value can start, so the scan
    begins there instead of at the start of the line. A step without gates always
    runs and does its own cheaper check first.
    """

    gates: tuple[str, ...]
    reach: int

    def start(self, text: str) -> int:
        """Where the scan may begin: ``reach`` before the first gate in the text."""
        first = len(text)
        for gate in self.gates:
            index = text.find(gate)
            if 0 <= index < first:
                first = index
        return max(0, first - self.reach)

    def apply(self, text: str, pos: int) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class _Pass(_Step):
    """A pattern joining alternatives (forms), each ending with an empty group naming it."""

    pattern: re.Pattern[str]
    forms: dict[str, _Form]
    enabled: frozenset[str]  # the built-in names the redactor was built with

    def apply(self, text: str, pos: int) -> str:
        spans: list[_Span] = []
        _scan(self.pattern, text, self._choose, spans, pos=pos)
        return _substitute(text, spans)

    def _choose(self, match: re.Match[str]) -> _Span | None:
        form = self.forms[match.lastgroup or ""]
        start, end = match.span()
        if form.value_group is not None and match.start(form.value_group) >= 0:
            start, end = match.span(form.value_group)
        name = form.name if form.check is None else form.check(match, start)
        if name is None or name not in self.enabled:
            return None
        return start, end, name


@dataclass(frozen=True)
class _NumbersPass(_Pass):
    """SSNs, phone and card numbers: the pattern only runs around trigger matches."""

    def apply(self, text: str, pos: int) -> str:
        found = _NUMBER_TRIGGER.search(text, pos)
        if found is None:
            return text
        spans: list[_Span] = []
        while found is not None:
            start = found.start()
            while start > 0 and text[start - 1] in _RUN_CHARS:
                start -= 1
            run = _RUN.match(text, found.end())
            end = run.end() if run is not None else found.end()
            # Two characters past the run for the look-ahead at the end of a value; the
            # look-behind at its start sees the text before ``start`` anyway.
            _scan(self.pattern, text, self._choose, spans, pos=start, endpos=end + 2)
            found = _NUMBER_TRIGGER.search(text, end)
        return _substitute(text, spans)


@dataclass(frozen=True)
class _UrlStep(_Step):
    """URL passwords, found from each "://" (see ``_URL_USERINFO``)."""

    def apply(self, text: str, pos: int) -> str:
        spans: list[_Span] = []
        found = text.find("://", pos)
        while found >= 0:
            after = found + 3
            if found and text[found - 1] in _SCHEME_CHARS:
                userinfo = _URL_USERINFO.match(text, after)
                if userinfo is not None:
                    spans.append((*userinfo.span("v_url"), "url_password"))
                    after = userinfo.end()
            found = text.find("://", after)
        return _substitute(text, spans)


@dataclass(frozen=True)
class _EmailStep(_Step):
    """E-mail addresses, found from each "@" (see ``_EMAIL_DOMAIN``)."""

    def apply(self, text: str, pos: int) -> str:
        pieces: list[str] = []
        last = 0
        at = text.find("@", pos)
        while at >= 0:
            domain = _EMAIL_DOMAIN.match(text, at + 1)
            if domain is None:
                at = text.find("@", at + 1)
                continue
            floor = max(last, at - _LONGEST_LOCAL - 1)
            local = _EMAIL_LOCAL_REVERSED.match(text[floor:at][::-1])
            start = at - local.end() if local is not None else at
            while start < at and text[start] == ".":
                start += 1  # a local part does not start with a dot
            too_long = local is not None and local.end() > _LONGEST_LOCAL
            if start == at or too_long:
                at = text.find("@", at + 1)
                continue
            start, end = _clip(text, start, domain.end())
            pieces.append(text[last:start])
            pieces.append(_marker("email"))
            last = end
            at = text.find("@", end)
        if not pieces:
            return text
        pieces.append(text[last:])
        return "".join(pieces)


def _build_pass(
    alternatives: Sequence[tuple[str, str, _Form]],
    enabled: frozenset[str],
    *,
    gates: tuple[str, ...] = (),
    reach: int = 0,
    prefix: str = "",
    flags: int = 0,
    kind: type[_Pass] = _Pass,
) -> _Pass | None:
    """Join alternatives into one pattern; each ends with an empty group naming its form.

    The empty group at the end (instead of a group around each alternative) is what
    ``match.lastgroup`` reports, and leaves each alternative starting with its own
    first character, which the engine can test cheaply before trying it.
    """
    if not alternatives:
        return None
    parts = [f"{body}(?P<f_{form_id}>)" for form_id, body, _ in alternatives]
    forms = {f"f_{form_id}": form for form_id, _, form in alternatives}
    pattern = re.compile(prefix + "(?:" + "|".join(parts) + ")", flags)
    return kind(gates, reach, pattern, forms, enabled)


# -- identifiers: SSNs, dates of birth, case numbers and record lines, by shape alone ------

# Characters of the "codes" in fixed-width records: upper-case letters, digits, and the
# symbols a digit-substituted ("encrypted") SSN such as @9ZP0#YBW is written with.
_CODE = "A-Z0-9@#$%&*"
_CODE_CHARS = frozenset(string.ascii_uppercase + string.digits + "@#$%&*")
_CODE_SYMBOLS = frozenset("@#$%&*")
_WORD_CHARS = frozenset(string.ascii_letters + string.digits)
_LOWER_HEX = frozenset("0123456789abcdef")
_UPPER_HEX = frozenset("0123456789ABCDEF")

# Two scans, each led by one character class so the engine skips in C to where a value
# can start, and each checked in Python on its candidates only. Most log lines hold a
# timestamp, so a scan that tried a date pattern at every digit would cost more than
# the rest of redaction together.
#
# First, every run of eight or more codes (digits, capitals, the symbols above): records,
# case numbers, encrypted SSNs, and runs of digits.
_CODE_RUN = re.compile(f"[{_CODE}]{{8,}}", re.ASCII)
_DIGIT_RUN = re.compile(r"\d{8,}", re.ASCII)
# Then values written with separators, found from the separator: the digits before it
# are checked in a look-behind.
_SEPARATED = re.compile(
    r"[-/ ](?:"
    # YYYY-MM-DD that is not the date of a timestamp (no time right after it).
    r"(?<=\d{4}-)\d\d-\d\d(?![\d\-/]|T\d| \d\d?:\d)(?P<f_iso>)"
    # An SSN written 123-45-6789 or 123 45 6789, whatever its range.
    r"|(?<=\d{3}-)\d\d-\d{4}(?![\d\-]|\.\d)(?P<f_ssn_dash>)"
    r"|(?<=\d{3} )\d\d \d{4}(?![\d\-]|\.\d)(?P<f_ssn_space>)"
    # MM/DD/YYYY or M/D/YYYY, likewise not a timestamp's.
    r"|(?<=\d/)\d\d?/\d{4}(?![\d/\-]| \d\d?:\d)(?P<f_us>)"
    ")",
    re.ASCII,
)
# How many digits stand before the separator each form starts from.
_LEAD = {"f_iso": 4, "f_ssn_dash": 3, "f_ssn_space": 3}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_COMPACT_TIMESTAMP = re.compile(r"\d{8}T\d{4,6}Z?", re.ASCII)
_RECORD_CHUNK = re.compile(f" +[{_CODE}]*[0-9][{_CODE}]*(?![A-Za-z0-9@#$%&*])", re.ASCII)
_MIN_YEAR, _MAX_YEAR = 1900, 2099
_RECORD_LENGTH = 20  # a mostly-digit token this long is a record line, or a piece of one
# An SSN keyword shortly before a nine-character code makes it a substituted SSN.
_SSN_NEAR = re.compile(r"(?i:ssn|social security)")


def _valid_date(year: int, month: int, day: int) -> bool:
    """A calendar date in the years a date of birth (or a case opened) can have."""
    if not (_MIN_YEAR <= year <= _MAX_YEAR and 1 <= month <= 12 and day >= 1):
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    return day <= (30 if month in (4, 6, 9, 11) else 31)


def _eight_digit_date(digits: str) -> bool:
    """YYYYMMDD or MMDDYYYY."""
    return _valid_date(int(digits[:4]), int(digits[4:6]), int(digits[6:])) or _valid_date(
        int(digits[4:]), int(digits[:2]), int(digits[2:4])
    )


def _enclosing(text: str, start: int, end: int, chars: frozenset[str]) -> tuple[int, int]:
    while start > 0 and text[start - 1] in chars:
        start -= 1
    while end < len(text) and text[end] in chars:
        end += 1
    return start, end


def _is_hash(word: str) -> bool:
    """Hexadecimal digits with a letter among them: a hash, digest or id, not a number.

    Lower case from 12 characters (short commit ids, digests), upper case from 32 (an
    MD5 and longer), so that an upper-case case number such as ``A1234567890`` is not
    taken for one.
    """
    if any(ch.isalpha() for ch in word):
        if len(word) >= 12 and set(word) <= _LOWER_HEX:
            return True
        if len(word) >= 32 and set(word) <= _UPPER_HEX:
            return True
    return False


def _in_hash_or_uuid(text: str, start: int, end: int) -> bool:
    word_start, word_end = _enclosing(text, start, end, _WORD_CHARS)
    if _is_hash(text[word_start:word_end]):
        return True
    dashed_start, dashed_end = _enclosing(text, start, end, _WORD_CHARS | {"-"})
    dashed = text[dashed_start:dashed_end]
    return len(dashed) >= 36 and _UUID.search(dashed) is not None


def _digit_run(text: str, start: int, end: int) -> bool:
    """Whether a run of eight or more digits is an identifier.

    Not when it is the fraction of a decimal number (Celery's ``succeeded in
    0.004562812997028232s``), nor a stretch of a hash or UUID; eight digits only when
    they are a date; nine and more always (an SSN, a case or account number, an id
    long enough to be one).
    """
    if start >= 2 and text[start - 1] == "." and text[start - 2].isdigit():
        return False
    if _in_hash_or_uuid(text, start, end):
        return False
    if end - start == 8:
        return _eight_digit_date(text[start:end])
    return True


def _extend_record(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a record line over the space-separated pieces of codes and digits around it.

    Blank fields of a fixed-width record are spaces, so one record can look like
    several tokens; a piece counts when it holds a digit and touches no lower-case word.
    """
    while (chunk := _RECORD_CHUNK.match(text, end)) is not None:
        end = chunk.end()
    while True:
        gap = start
        while gap > 0 and text[gap - 1] == " ":
            gap -= 1
        if gap == start:
            return start, end
        piece = gap
        while piece > 0 and text[piece - 1] in _CODE_CHARS:
            piece -= 1
        word = text[piece:gap]
        if not word or (piece > 0 and text[piece - 1].isalnum()):
            return start, end
        if not any(ch.isdigit() for ch in word):
            return start, end
        start = piece


def _code_token(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span to mask for a token of codes, digits and symbols, or ``None``.

    Mostly digits (at least 60%): a record line or a case number, masked whole, with
    everything inside it (DOB, SSN, an encrypted SSN). Nine to twelve characters with
    four digits: a case or account number of letters and digits. Nine characters with
    one of ``@#$%&*``: a digit-substituted SSN.
    """
    token = text[start:end]
    length = end - start
    digits = sum(ch.isdigit() for ch in token)
    if digits == length:
        return (start, end) if _digit_run(text, start, end) else None
    if digits * 5 >= length * 3:
        return _extend_record(text, start, end) if length >= _RECORD_LENGTH else (start, end)
    if length <= 12 and digits >= 4:
        return start, end
    if length == 9 and (
        not _CODE_SYMBOLS.isdisjoint(token) or _SSN_NEAR.search(text, max(0, start - 48), start)
    ):
        return start, end
    return None


def _kept_whole(token: str) -> bool:
    """A compact timestamp (``20240115T083000Z``) or a hash: nothing inside it is masked."""
    return _COMPACT_TIMESTAMP.fullmatch(token) is not None or _is_hash(token)


def _separated(match: re.Match[str]) -> _Span | None:
    """A date of birth or SSN written with separators, with nothing number-like before it."""
    text = match.string
    form = match.lastgroup or ""
    sep = match.start()
    if form == "f_us":
        start = sep - 2 if sep >= 2 and text[sep - 2].isdigit() else sep - 1
    else:
        start = sep - _LEAD[form]
    if start > 0 and text[start - 1] in _BEFORE_SEPARATED:
        return None
    value = text[start : match.end()]
    if form == "f_iso":
        valid = _valid_date(int(value[:4]), int(value[5:7]), int(value[8:]))
    elif form == "f_us":
        month, day, year = value.split("/")
        valid = _valid_date(int(year), int(month), int(day))
    else:
        valid = True
    return (start, match.end(), "identifiers") if valid else None


def _kinds(codes: str, kept: str, separators: str) -> bytes:
    """A ``bytes.translate`` table: ``codes`` to ``0``, separators to ``-``, others ``.``."""
    table = bytearray(b"." * 256)
    for ch in codes:
        table[ord(ch)] = ord("0")
    for ch in kept:
        table[ord(ch)] = ord(ch)
    for ch in separators:
        table[ord(ch)] = ord("-")
    return bytes(table)


# Bytes of non-ASCII characters become "." in both: they are never part of a value.
_CODE_KINDS = _kinds(string.ascii_uppercase + string.digits + "@#$%&*", "", "")
_SEPARATED_KINDS = _kinds(string.digits, "T:", "-/ ")


def _has_separated(kinds: bytes) -> bool:
    """Whether the text may hold a separated SSN or a date that is not a timestamp's.

    With every separator written ``-``, each form holds ``0-00-0`` or ``0-0-00``; a
    timestamp's date does too, so those are counted and taken off.
    """
    found = kinds.count(b"0-00-0") + kinds.count(b"0-0-00")
    if not found:
        return False
    return found > kinds.count(b"0000-00-00T0") + kinds.count(b"0000-00-00-00:")


_BEFORE_SEPARATED = frozenset(string.digits + "-./")
_ESCAPE_LETTERS = frozenset("nrtbf")


def _touches_word(text: str, start: int, end: int) -> bool:
    """Whether a run of codes is part of a word with lower-case letters.

    The letter of a backslash escape right before it (the ``\\n`` of a JSON line, or of
    a JSON line nested in another) does not count.
    """
    if end < len(text) and text[end].isalpha():
        return True
    if start == 0 or not text[start - 1].isalpha():
        return False
    # Whatever the number of backslashes: JSON nested in a JSON string writes ``\\n``.
    return not (text[start - 1] in _ESCAPE_LETTERS and start >= 2 and text[start - 2] == "\\")


@dataclass(frozen=True)
class _IdentifiersStep(_Step):
    """The ``identifiers`` built-in: values of people's records recognised by shape alone."""

    def apply(self, text: str, pos: int) -> str:
        # A cheap look first, over the text's bytes with every character mapped to its
        # kind (see _CODE_KINDS): most lines hold no run of eight codes and no separated
        # value, and then no pattern runs at all.
        data = text.encode("utf-8", "surrogatepass")
        runs = data.translate(_CODE_KINDS).find(b"00000000") >= 0
        separated = _has_separated(data.translate(_SEPARATED_KINDS))
        if not (runs or separated):
            return text
        spans: list[_Span] = []
        for run in _CODE_RUN.finditer(text, pos) if runs else ():
            start, end = run.span()
            if _kept_whole(run.group()):
                continue
            if end - start > 8 and not _touches_word(text, start, end):
                chosen = _code_token(text, start, end)
                if chosen is not None:
                    spans.append((*chosen, "identifiers"))
                    continue
            # Not a token of its own: only the runs of digits in it can still count.
            for digits in _DIGIT_RUN.finditer(text, start, end):
                if _digit_run(text, *digits.span()):
                    spans.append((*digits.span(), "identifiers"))
        if separated:
            _scan(_SEPARATED, text, _separated, spans, pos=pos)
        if len(spans) > 1:
            spans = _merged(spans)
        return _substitute(text, spans)


def _merged(spans: list[_Span]) -> list[_Span]:
    """Spans in order with overlaps joined (a record line widened over an earlier value)."""
    spans.sort()
    merged = [spans[0]]
    for start, end, name in spans[1:]:
        last_start, last_end, last_name = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end), last_name)
        else:
            merged.append((start, end, name))
    return merged


def _builtin_steps(names: frozenset[str]) -> list[_Step]:
    """The scans for the chosen built-ins, in the order they run."""
    numbers = [
        (form_id, body + _NUMBER_END, _Form(kind, check=check))
        for form_id, body, kind, check in _NUMBER_FORMS
        if kind in names or (not kind and names & {"ssn", "phone"})
    ]
    auth = [
        ("auth", _AUTH_HEADER, _Form("auth_header", "v_auth")),
        ("bearer", _BEARER, _Form("auth_header", "v_bearer")),
    ]
    jwt = [("jwt", _JWT, _Form("jwt"))]
    aws = [
        ("aws_id", _AWS_ID, _Form("aws_key")),
        ("aws_secret", _AWS_SECRET, _Form("aws_key", "v_awssecret", _aws_secret)),
    ]
    steps: list[_Step | None] = [
        _build_pass(numbers, names, prefix=_NUMBER_START, flags=re.ASCII, kind=_NumbersPass),
        # URLs before e-mail addresses: "user:password@host" is not an address.
        _UrlStep(("://",), 0) if "url_password" in names else None,
        _EmailStep(("@",), 0) if "email" in names else None,
        _build_pass(auth, names, gates=_AUTH_GATES, reach=_AUTH_REACH)
        if "auth_header" in names
        else None,
        _build_pass(jwt, names, gates=("eyJ",)) if "jwt" in names else None,
        _build_pass(aws, names, gates=("AKIA", "ASIA", "ecret", "ECRET"), reach=1)
        if "aws_key" in names
        else None,
        # Last, on what the others left: their markers hold nothing it matches.
        _IdentifiersStep((), 0) if "identifiers" in names else None,
    ]
    return [step for step in steps if step is not None]


# -- Registered secrets -----------------------------------------------------------------------


@dataclass(frozen=True)
class _SecretTable:
    """Every written form of every registered secret, in one pattern of literals."""

    pattern: re.Pattern[str]
    names: dict[str, str]  # written form -> name

    def apply(self, text: str) -> str:
        spans = [(m.start(), m.end(), self.names[m.group()]) for m in self.pattern.finditer(text)]
        return _substitute(text, spans)


_secrets_lock = threading.Lock()
_secret_values: dict[str, str] = {}
# Replaced whole on each change; redact() reads it without the lock.
_secret_table: _SecretTable | None = None


def _written_forms(value: str) -> set[str]:
    """The ways a value is written in a log: as it is, JSON-escaped, repr-escaped, in a URL."""
    return {
        value,
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
    }


def register_secret(value: str, name: str = "secret") -> None:
    """Redact every later occurrence of ``value`` in this process as ``[REDACTED:<name>]``.

    For values known at run time that have no recognisable shape, such as a database
    or broker password read from the environment. Applies to every :class:`Redactor`
    whose entries include ``"secrets"``, including ones built before the call.
    Registering a value again replaces its name.

    Raises ``ValueError`` for a value shorter than :data:`MIN_SECRET_LENGTH` (a short
    value such as ``"admin"`` would blank out ordinary words in every line) and for a
    name other than 1 to 64 letters, digits, ``_``, ``.`` or ``-``.
    """
    global _secret_table
    if not isinstance(value, str):
        raise TypeError(f"a secret must be a string, not {type(value).__name__}")
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"a secret must be at least {MIN_SECRET_LENGTH} characters long to be redacted "
            f"(this one has {len(value)}); shorter values would mask ordinary text"
        )
    if not isinstance(name, str) or not _SECRET_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a usable secret name: use letters, digits, _ . -")
    with _secrets_lock:
        _secret_values[value] = name
        _secret_table = _compile_secrets(_secret_values)


def forget_secrets() -> None:
    """Forget every registered secret (for tests)."""
    global _secret_table
    with _secrets_lock:
        _secret_values.clear()
        _secret_table = None


def _compile_secrets(values: dict[str, str]) -> _SecretTable:
    names: dict[str, str] = {}
    for value, name in values.items():
        for form in _written_forms(value):
            names.setdefault(form, name)
        names[value] = name
    # Longest first, so a secret that contains another is replaced whole.
    ordered = sorted(names, key=lambda form: (-len(form), form))
    return _SecretTable(re.compile("|".join(re.escape(form) for form in ordered)), names)


# -- Entries ----------------------------------------------------------------------------------


def entry_problem(entry: object) -> str | None:
    """Say why one entry of the redaction list is unusable, or ``None`` when it is usable.

    A bare lower-case identifier must be a built-in name, and so must anything that
    is one but for case or surrounding spaces (``"SSN"``); anything else must compile
    as a regular expression that cannot match the empty string.
    """
    if not isinstance(entry, str):
        return f"{entry!r} is not a string"
    if not entry:
        return "an empty entry redacts nothing"
    if entry in BUILTIN_NAMES:
        return None
    if entry.strip().lower() in BUILTIN_NAMES:
        # "SSN" or " email" would otherwise be a regular expression for that text.
        return f"{entry!r} is not a built-in name; did you mean {entry.strip().lower()!r}?"
    if _BUILTIN_SHAPE.fullmatch(entry):
        return (
            f"{entry!r} is not a built-in name (known: {', '.join(BUILTIN_NAMES)}); "
            f"to redact that word, write it as a regular expression such as '\\b{entry}\\b'"
        )
    return _regex_problem(entry)


def _regex_problem(entry: str) -> str | None:
    try:
        compiled = re.compile(entry)
    except re.error as error:
        return f"{entry!r} is not a valid regular expression: {error}"
    if compiled.search("") is not None:
        return f"{entry!r} matches the empty string, so it would match everywhere"
    return None


@dataclass(frozen=True)
class _Custom:
    """A regular-expression entry: the whole match, or its ``secret`` group, is replaced."""

    pattern: re.Pattern[str]
    has_secret_group: bool

    def apply(self, text: str) -> str:
        spans: list[_Span] = []
        _scan(self.pattern, text, self._choose, spans)
        return _substitute(text, spans)

    def _choose(self, match: re.Match[str]) -> _Span | None:
        start, end = match.span(_SECRET_GROUP) if self.has_secret_group else match.span()
        return (start, end, _CUSTOM_NAME) if start < end else None


class Redactor:
    """Replaces sensitive values in a record's final text with ``[REDACTED:<name>]``.

    Build one per configuration with :meth:`from_entries` and share it: it holds only
    compiled patterns and is safe to use from any number of threads at once.
    """

    __slots__ = ("_custom", "_entries", "_secrets", "_steps")

    def __init__(self, entries: Sequence[str] = ()) -> None:
        if isinstance(entries, str):
            raise ValueError(f"expected a list of entries, not the string {entries!r}")
        problems = [
            f"entry {index}: {problem}"
            for index, entry in enumerate(entries)
            if (problem := entry_problem(entry)) is not None
        ]
        if problems:
            raise ValueError("; ".join(problems))
        self._entries: tuple[str, ...] = tuple(dict.fromkeys(entries))
        builtins = frozenset(entry for entry in self._entries if entry in BUILTIN_NAMES)
        self._secrets = "secrets" in builtins
        self._steps = _builtin_steps(builtins)
        self._custom: list[_Custom] = []
        for entry in self._entries:
            if entry not in builtins:
                compiled = re.compile(entry)
                self._custom.append(_Custom(compiled, _SECRET_GROUP in compiled.groupindex))

    @classmethod
    def from_entries(cls, entries: Sequence[str]) -> Redactor:
        """A redactor for built-in names and regular expressions; ``ValueError`` names bad ones."""
        return cls(entries)

    @property
    def entries(self) -> tuple[str, ...]:
        """The entries this redactor was built from, without repeats."""
        return self._entries

    def __bool__(self) -> bool:
        """False when built from no entries, so the caller can skip :meth:`redact` entirely.

        A redactor with only ``"secrets"`` is true even while no secret is registered,
        since secrets may be registered after it is built.
        """
        return bool(self._entries)

    def __repr__(self) -> str:
        return f"Redactor({list(self._entries)!r})"

    def redact(self, text: str) -> str:
        """``text`` with every sensitive value replaced; the same object when nothing was.

        Registered secrets go first, so their own names win; then the built-ins, then
        the regular-expression entries, each on the output of the one before.
        """
        out = text
        if self._secrets:
            table = _secret_table
            if table is not None:
                out = table.apply(out)
        for step in self._steps:
            gates = step.gates
            if not gates:
                out = step.apply(out, 0)
                continue
            for gate in gates:
                if gate in out:
                    out = step.apply(out, step.start(out))
                    break
        for custom in self._custom:
            out = custom.apply(out)
        return out


@functools.lru_cache(maxsize=8)
def cached_redactor(entries: tuple[str, ...]) -> Redactor:
    """The redactor for a setting's entries, compiled once per process and shared."""
    return Redactor(entries)


# -- Values outside log lines: task arguments, subjects, key fields -------------------------

_JsonValue = Any


def redact_value(value: object, redact: Callable[[str], str], *, name: str | None = None) -> str:
    """The text of one value (``str(value)``), redacted as it would be in a log line.

    For a run's subject and each key field taken from an argument. ``name`` is the
    parameter the value came from: it is put before the value as ``name: value`` for
    the redactor, so that keyword rules apply (``ssn`` holding ``123456789`` is an
    SSN even with the default set), and taken off again. A value that is already
    text is used as it is.
    """
    text = value if isinstance(value, str) else str(value)
    if name:
        prefix = f"{name}: "
        labelled = redact(prefix + text)
        if labelled.startswith(prefix):
            return labelled[len(prefix) :]
    return redact(text)


def redact_json(value: _JsonValue, redact: Callable[[str], str]) -> _JsonValue:
    """A JSON-safe ``value`` (task arguments) redacted as one JSON text, keys and numbers too.

    The value is written as JSON with every number written as a string, so that the
    redactor sees each number and its dict key side by side (``{"ssn": 123456789}``),
    and so that a marker put where a number stood keeps the text valid JSON. Read back,
    every number that was not masked is a number again; a masked one, a dict key
    included, is the marker text. Where a custom pattern's match spans the JSON
    syntax itself and the text no longer parses, each string, key and number is
    redacted on its own instead, with its key as context.
    """
    text = json.dumps(_numbers_as_text(value), ensure_ascii=False)
    redacted = redact(text)
    if redacted is text:
        return value
    try:
        parsed = json.loads(redacted, object_pairs_hook=_pairs)
    except ValueError:
        return _redact_leaves(value, redact, None)
    return _numbers_back(value, parsed)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object read back as its pairs in order, so masked keys that collide stay apart."""


def _pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    return _Pairs(pairs)


def _numbers_as_text(value: _JsonValue) -> _JsonValue:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, list):
        return [_numbers_as_text(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _numbers_as_text(item) for key, item in value.items()}
    return value


def _numbers_back(original: _JsonValue, parsed: _JsonValue) -> _JsonValue:
    """``parsed`` with the numbers of ``original`` restored where they were not masked."""
    if isinstance(original, (int, float)) and not isinstance(original, bool):
        return original if parsed == json.dumps(original) else parsed
    if isinstance(original, list) and isinstance(parsed, list):
        return [_numbers_back(a, b) for a, b in zip(original, parsed, strict=True)]
    if isinstance(original, dict) and isinstance(parsed, _Pairs):
        result: dict[str, Any] = {}
        for (_, item), (key, redacted) in zip(original.items(), parsed, strict=True):
            unique = key
            while unique in result:
                unique += "_"
            result[unique] = _numbers_back(item, redacted)
        return result
    return parsed


def _redact_leaves(value: _JsonValue, redact: Callable[[str], str], name: str | None) -> _JsonValue:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        shown = json.dumps(value)
        masked = redact_value(shown, redact, name=name)
        return value if masked == shown else masked
    if isinstance(value, str):
        return redact_value(value, redact, name=name)
    if isinstance(value, list):
        return [_redact_leaves(item, redact, name) for item in value]
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            unique = redact_value(str(key), redact)
            while unique in result:
                unique += "_"
            result[unique] = _redact_leaves(item, redact, str(key))
        return result
    return value

"""Identity rules for members: PRC resident IDs, ages and masking (SPEC §3).

Pure functions, standard library only, shared by the services and the demo data generator.
"""

from __future__ import annotations

import hashlib
import operator
import re
from dataclasses import dataclass
from datetime import date

__all__ = [
    "IdHasher",
    "InvalidResidentId",
    "ResidentId",
    "age_in_days",
    "age_on",
    "check_digit",
    "id_hash",
    "mask_id",
    "mask_name",
    "parse_resident_id",
    "synthetic_id",
]

# GB 11643-1999 / ISO 7064 MOD 11-2: weight of position i (1-based) is 2**(18-i) mod 11,
# and the check character is the one that makes the weighted sum of all 18 equal 1 mod 11.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
# Summing the ASCII codes and subtracting 48 ('0') per weight once is the same sum without
# converting each digit: a bulk import checks every member's ID.
_ASCII_ZERO_SUM = ord("0") * sum(_WEIGHTS)
_CHECK_CHARS = "10X98765432"  # indexed by (weighted sum of the first 17) mod 11

# Province-level codes only: finer codes change over time and old IDs keep their old code.
# 71 Taiwan, 81 Hong Kong, 82 Macao; 83 is issued to Taiwan residents' residence permits.
PROVINCE_CODES = frozenset(
    [*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55),
     *range(61, 66), 71, 81, 82, 83]
)

# [0-9] and not \d: \d also matches non-ASCII digits such as '٣'.
_ID_PATTERN = re.compile(r"[0-9]{17}[0-9X]")
_FIRST17 = re.compile(r"[0-9]{17}")
_MIN_BIRTH_YEAR = 1900


class InvalidResidentId(ValueError):
    """A resident ID was rejected; ``reason_code`` is one of the ``ID_*`` codes.

    Messages never repeat the number: they may end up in events and logs.
    """

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True, repr=False, slots=True)
class ResidentId:
    value: str  # normalised: 18 characters, check character 'X' in upper case
    birth_date: date

    # Derived on demand: a bulk import parses every member's ID and needs only the two above.
    @property
    def region_code(self) -> str:
        """6 digits."""
        return self.value[:6]

    @property
    def sequence(self) -> str:
        """3 digits."""
        return self.value[14:17]

    @property
    def sex(self) -> str:
        """'M' or 'F'."""
        return "M" if int(self.value[16]) % 2 else "F"

    def __repr__(self) -> str:
        # The fields together rebuild the number, so show only the masked form.
        return f"ResidentId({mask_id(self.value)!r})"


def check_digit(first17: str) -> str:
    """The check character ('0'-'9' or 'X') for the first 17 digits of an ID."""
    if not _FIRST17.fullmatch(first17):
        raise ValueError("expected exactly 17 ASCII digits")
    return _check_char(first17)


def _check_char(first17: str) -> str:
    total = sum(map(operator.mul, first17.encode("ascii"), _WEIGHTS)) - _ASCII_ZERO_SUM
    return _CHECK_CHARS[total % 11]


def _normalised(value: str) -> str:
    """The check character 'x' written as 'X'. Only the check character has a case; upper()
    on the whole string could change its length (e.g. 'ß' -> 'SS') before the format check."""
    return value[:17] + value[17:].replace("x", "X") if "x" in value[17:] else value


def parse_resident_id(value: str, today: date | None = None) -> ResidentId:
    """Validate an 18-character resident ID; raise ``InvalidResidentId`` when it is not one.

    Checks run in the order format, checksum, region, birth date, so a mistyped digit
    is reported as ``ID_CHECKSUM`` whatever field it landed in.
    """
    normalised = _normalised(value)
    if not _ID_PATTERN.fullmatch(normalised):
        raise InvalidResidentId("ID_FORMAT", "a resident ID is 17 digits and a check digit or X")
    if _check_char(normalised[:17]) != normalised[17]:
        raise InvalidResidentId("ID_CHECKSUM", "the resident ID's check digit does not match")
    if int(normalised[:2]) not in PROVINCE_CODES:
        raise InvalidResidentId("ID_REGION", "the resident ID's region code is not a province")

    year, month, day = int(normalised[6:10]), int(normalised[10:12]), int(normalised[12:14])
    try:
        birth = date(year, month, day)
    except ValueError:
        raise InvalidResidentId(
            "ID_BIRTH_DATE", "the resident ID's birth date is not a date") from None
    if year < _MIN_BIRTH_YEAR:
        raise InvalidResidentId("ID_BIRTH_DATE", "the resident ID's birth year is before 1900")
    if birth > (date.today() if today is None else today):
        raise InvalidResidentId("ID_BIRTH_DATE", "the resident ID's birth date is in the future")

    return ResidentId(normalised, birth)


def age_on(birth: date, on: date) -> int:
    """Full years of age on ``on``.

    Comparing (month, day) pairs makes someone born on Feb 29 a year older on Mar 1 in
    non-leap years, since (2, 28) < (2, 29) <= (3, 1).
    """
    if on < birth:
        raise ValueError("date is before the birth date")
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_in_days(birth: date, on: date) -> int:
    """Days lived on ``on``: 0 on the birth date."""
    if on < birth:
        raise ValueError("date is before the birth date")
    return (on - birth).days


def mask_id(value: str) -> str:
    """``310***********1234``: the form events carry (SPEC §3)."""
    if len(value) != 18:
        # Masking any other length would keep a different share of the number visible.
        raise ValueError("a resident ID has 18 characters")
    return value[:3] + "*" * 11 + value[-4:]


def mask_name(name: str) -> str:
    """``*``, ``张*``, ``张*明``, ``欧**华``: keep the first and last character only."""
    name = name.strip()
    if not name:
        raise ValueError("a name must not be empty")
    if len(name) == 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def synthetic_id(region_code: str, birth: date, sequence: int) -> str:
    """A valid ID for tests and demo data; raises ``ValueError`` on an impossible input."""
    if not re.fullmatch(r"[0-9]{6}", region_code):
        raise ValueError("region_code must be 6 ASCII digits")
    if not 0 <= sequence <= 999:
        raise ValueError("sequence must be in 0..999")
    first17 = f"{region_code}{birth:%Y%m%d}{sequence:03d}"
    value = first17 + check_digit(first17)
    # Parse it back so every rule (province, year >= 1900) holds; today=birth keeps the
    # result independent of the clock.
    parse_resident_id(value, today=birth)
    return value


def id_hash(value: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256, hex) to store and look up an ID without the clear number.

    Keyed rather than a plain hash: with only ~10^11 plausible IDs, an unkeyed hash
    is reversed by enumeration.
    """
    return IdHasher(key)(value)


class IdHasher:
    """``id_hash`` under one key, for many IDs: HMAC's two keyed SHA-256 states are computed
    once and copied per ID (RFC 2104), less than half the cost of ``hmac.digest`` per call on
    a bulk import."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("id_hash needs a non-empty key")
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, value: str) -> str:
        # Same normalisation as parse_resident_id, so '...x' and '...X' find the same member.
        inner = self._inner.copy()
        inner.update(_normalised(value).encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


_SHA256_BLOCK = 64

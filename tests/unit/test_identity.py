"""Identity rules: resident ID parsing, ages, masking, keyed hash (SPEC §3)."""

from __future__ import annotations

import calendar
import hmac
from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mutualaid.identity import (
    IdHasher,
    InvalidResidentId,
    ResidentId,
    age_in_days,
    age_on,
    check_digit,
    id_hash,
    mask_id,
    mask_name,
    parse_resident_id,
    synthetic_id,
)

TODAY = date(2025, 6, 1)

PROVINCES = [
    *range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55),
    *range(61, 66), 71, 81, 82, 83,
]

region_codes = st.builds(
    lambda province, rest: f"{province:02d}{rest:04d}",
    st.sampled_from(PROVINCES), st.integers(0, 9999),
)
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
sequences = st.integers(0, 999)
valid_ids = st.builds(synthetic_id, region_codes, birth_dates, sequences)


def iso7064_ok(value: str) -> bool:
    """Reference from the standard's definition: sum of d_i * 2**(18-i) over all 18 is 1 mod 11."""
    digits = [10 if ch == "X" else int(ch) for ch in value]
    return sum(d * 2 ** (17 - i) for i, d in enumerate(digits)) % 11 == 1


def reason(value: str, today: date = TODAY) -> str:
    with pytest.raises(InvalidResidentId) as info:
        parse_resident_id(value, today=today)
    return info.value.reason_code


# --- known-good examples -------------------------------------------------------------


@pytest.mark.domain
def test_gb_standard_example_parses():
    rid = parse_resident_id("11010519491231002X", today=TODAY)
    assert rid == ResidentId(value="11010519491231002X", birth_date=date(1949, 12, 31))
    assert (rid.region_code, rid.sequence, rid.sex) == ("110105", "002", "F")


@pytest.mark.domain
def test_gb_standard_check_digits():
    # Both worked examples of GB 11643-1999.
    assert check_digit("11010519491231002") == "X"
    assert check_digit("44052418800101001") == "4"


@pytest.mark.domain
def test_lowercase_x_is_normalised():
    assert parse_resident_id("11010519491231002x", today=TODAY).value == "11010519491231002X"


@pytest.mark.domain
@pytest.mark.parametrize(
    ("value", "region", "birth", "sex"),
    [
        ("310115200002291235", "310115", date(2000, 2, 29), "M"),  # leap day
        ("830000198506150016", "830000", date(1985, 6, 15), "M"),  # residence permit code
        ("81000020010101555X", "810000", date(2001, 1, 1), "M"),
    ],
)
def test_other_valid_ids(value, region, birth, sex):
    rid = parse_resident_id(value, today=TODAY)
    assert (rid.region_code, rid.birth_date, rid.sex) == (region, birth, sex)


@pytest.mark.domain
def test_birth_date_today_is_accepted():
    value = synthetic_id("110105", TODAY, 1)
    assert parse_resident_id(value, today=TODAY).birth_date == TODAY


@pytest.mark.domain
def test_repr_does_not_show_the_number():
    rid = parse_resident_id("11010519491231002X", today=TODAY)
    assert repr(rid) == "ResidentId('110***********002X')"


# --- each rejection reason -----------------------------------------------------------


@pytest.mark.domain
@pytest.mark.parametrize(
    "value",
    [
        "",
        "11010519491231002",  # 17 characters
        "11010519491231002X0",  # 19 characters
        "1101051949123100X2",  # X not last
        "11010519491231002Y",  # bad check character
        " 11010519491231002X",  # surrounding space is not stripped
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits pass str.isdigit
    ],
)
def test_format_rejections(value):
    assert reason(value) == "ID_FORMAT"


@pytest.mark.domain
def test_checksum_rejection():
    assert reason("110105194912310021") == "ID_CHECKSUM"


@pytest.mark.domain
@pytest.mark.parametrize("province", [0, 10, 16, 20, 24, 30, 38, 40, 47, 55, 66, 70, 72, 80, 84, 99])
def test_region_rejections(province):
    first17 = f"{province:02d}010519491231002"
    assert reason(first17 + check_digit(first17)) == "ID_REGION"


@pytest.mark.domain
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("110105194902300020", "Feb 30"),
        ("110105194913010029", "month 13"),
        ("110105189912310023", "before 1900"),
        ("440524188001010014", "GB example, born 1880"),
        ("110105203001010028", "2030 is in the future"),
    ],
)
def test_birth_date_rejections(value, why):
    assert reason(value) == "ID_BIRTH_DATE", why


@pytest.mark.domain
def test_future_is_relative_to_today():
    value = synthetic_id("110105", TODAY, 1)
    assert reason(value, today=TODAY - timedelta(days=1)) == "ID_BIRTH_DATE"


@pytest.mark.domain
def test_message_does_not_repeat_the_number():
    with pytest.raises(InvalidResidentId) as info:
        parse_resident_id("110105194912310021", today=TODAY)
    assert "1949" not in str(info.value) and "110105" not in info.value.message


@pytest.mark.domain
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("99" + "0000", date(1990, 1, 1), 1), "region"),
        (("11000", date(1990, 1, 1), 1), "6 ASCII digits"),
        (("110000", date(1899, 12, 31), 1), "1900"),
        (("110000", date(1990, 1, 1), 1000), "0..999"),
        (("110000", date(1990, 1, 1), -1), "0..999"),
    ],
)
def test_synthetic_id_refuses_impossible_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        synthetic_id(*args)


# --- checksum properties -------------------------------------------------------------


@pytest.mark.domain
@given(region_codes, birth_dates, sequences)
def test_synthetic_id_parses_back(region, birth, sequence):
    value = synthetic_id(region, birth, sequence)
    rid = parse_resident_id(value, today=TODAY)
    assert (rid.value, rid.region_code, rid.birth_date, rid.sequence) == (
        value, region, birth, f"{sequence:03d}",
    )
    assert rid.sex == ("M" if sequence % 2 else "F")
    assert iso7064_ok(value)


@pytest.mark.domain
@given(valid_ids, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_changing_any_single_character_breaks_the_checksum(value, position, new):
    assume(new != value[position])
    assume(position == 17 or new != "X")  # X is only a check character
    changed = value[:position] + new + value[position + 1:]
    assert reason(changed) == "ID_CHECKSUM"


@pytest.mark.domain
@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_digit_satisfies_iso7064(first17):
    assert iso7064_ok(first17 + check_digit(first17))


# --- masking -------------------------------------------------------------------------


@pytest.mark.domain
def test_mask_id_spec_example():
    assert mask_id("310115200002291234") == "310***********1234"


@pytest.mark.domain
@given(st.one_of(valid_ids, st.text(min_size=18, max_size=18)))
def test_mask_id_keeps_only_first_3_and_last_4(value):
    masked = mask_id(value)
    assert len(masked) == 18
    assert masked[:3] == value[:3] and masked[-4:] == value[-4:]
    assert masked[3:14] == "*" * 11


@pytest.mark.domain
@given(st.text(max_size=40).filter(lambda s: len(s) != 18))
def test_mask_id_refuses_other_lengths(value):
    with pytest.raises(ValueError):
        mask_id(value)


@pytest.mark.domain
@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张", "*"),
        ("张三", "张*"),
        ("张小明", "张*明"),
        ("欧阳小华", "欧**华"),
        ("  张小明 ", "张*明"),
        ("Li", "L*"),
        ("John Smith", "J********h"),
    ],
)
def test_mask_name_examples(name, masked):
    assert mask_name(name) == masked


@pytest.mark.domain
@pytest.mark.parametrize("name", ["", "   "])
def test_mask_name_refuses_empty(name):
    with pytest.raises(ValueError):
        mask_name(name)


names = st.text(alphabet=st.characters(categories=["L"]), min_size=3, max_size=30)


@pytest.mark.domain
@given(names)
def test_mask_name_hides_the_middle(name):
    masked = mask_name(name)
    assert len(masked) == len(name)
    assert masked[0] == name[0] and masked[-1] == name[-1]
    assert masked[1:-1] == "*" * (len(name) - 2)
    # Characters that occur only in the middle never appear in the output.
    middle_only = set(name[1:-1]) - {name[0], name[-1]}
    assert not middle_only & set(masked)


# --- ages ----------------------------------------------------------------------------


def reference_age(birth: date, on: date) -> int:
    """Count the birthdays up to ``on``; a Feb 29 birthday falls on Mar 1 in other years."""
    def birthday(year: int) -> date:
        if (birth.month, birth.day) == (2, 29) and not calendar.isleap(year):
            return date(year, 3, 1)
        return birth.replace(year=year)

    return sum(1 for year in range(birth.year + 1, on.year + 1) if birthday(year) <= on)


@pytest.mark.domain
@pytest.mark.parametrize(
    ("on", "age"),
    [
        (date(2000, 2, 29), 0),
        (date(2001, 2, 28), 0),
        (date(2001, 3, 1), 1),
        (date(2004, 2, 28), 3),
        (date(2004, 2, 29), 4),
        (date(2060, 2, 28), 59),
        (date(2060, 2, 29), 60),
        (date(2061, 2, 28), 60),
        (date(2061, 3, 1), 61),
    ],
)
def test_age_on_feb_29(on, age):
    assert age_on(date(2000, 2, 29), on) == age


@pytest.mark.domain
def test_age_on_day_before_and_on_birthday():
    assert age_on(date(1965, 7, 10), date(2025, 7, 9)) == 59
    assert age_on(date(1965, 7, 10), date(2025, 7, 10)) == 60


@pytest.mark.domain
@given(birth_dates, st.integers(0, 130), st.integers(-3, 3))
def test_age_on_matches_reference_around_birthdays(birth, years, offset):
    year = birth.year + years
    assume(year <= 9999)
    anniversary = date(year, 3, 1) if (birth.month, birth.day) == (2, 29) and not \
        calendar.isleap(year) else birth.replace(year=year)
    on = anniversary + timedelta(days=offset)
    assume(on >= birth)
    assert age_on(birth, on) == reference_age(birth, on)


@pytest.mark.domain
@given(birth_dates, st.integers(0, 50_000), st.integers(0, 50_000))
def test_age_on_is_monotonic(birth, a, b):
    first, second = sorted((birth + timedelta(days=a), birth + timedelta(days=b)))
    assert age_on(birth, first) <= age_on(birth, second)
    assert age_on(birth, second) == reference_age(birth, second)


@pytest.mark.domain
@given(birth_dates, st.integers(0, 50_000))
def test_age_in_days(birth, days):
    on = birth + timedelta(days=days)
    assert age_in_days(birth, on) == days
    years = age_on(birth, on)
    assert 365 * years <= days < 366 * (years + 1)


@pytest.mark.domain
def test_ages_refuse_a_date_before_birth():
    with pytest.raises(ValueError):
        age_on(date(2000, 1, 2), date(2000, 1, 1))
    with pytest.raises(ValueError):
        age_in_days(date(2000, 1, 2), date(2000, 1, 1))


# --- keyed hash ----------------------------------------------------------------------


@pytest.mark.domain
def test_id_hash_is_keyed_hmac_sha256():
    import hashlib
    import hmac

    key = b"k" * 32
    digest = id_hash("11010519491231002X", key)
    assert digest == hmac.new(key, b"11010519491231002X", hashlib.sha256).hexdigest()
    assert id_hash("11010519491231002x", key) == digest  # same member either case
    assert id_hash("11010519491231002X", b"other key") != digest
    assert "11010519491231002X" not in digest


@pytest.mark.domain
def test_id_hash_refuses_empty_key():
    with pytest.raises(ValueError):
        id_hash("11010519491231002X", b"")


@pytest.mark.domain
@given(key=st.binary(min_size=1, max_size=150), value=st.text(max_size=40))
def test_id_hash_is_hmac_sha256_of_the_normalised_id(key: bytes, value: str) -> None:
    # The precomputed keyed states (IdHasher) give exactly the standard library's HMAC, for
    # keys shorter and longer than SHA-256's block.
    normalised = value[:17] + value[17:].replace("x", "X")
    expected = hmac.new(key, normalised.encode("utf-8"), "sha256").hexdigest()
    assert id_hash(value, key) == IdHasher(key)(value) == expected

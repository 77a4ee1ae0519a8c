"""National identifiers of Kazakhstan, Russia and China: checksum validation and valid fakes.

A checksum tells a real ИИН from a 12-digit lab accession number, so a number is redacted because
it *is* an identifier, not because it is long. Surrogates are generated with valid checksums so that
a de-identified note still looks like a real one to the model (and to downstream validators).
"""

from __future__ import annotations

import random

IIN_WEIGHTS_1 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
IIN_WEIGHTS_2 = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)
CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CN_CHECK = "10X98765432"


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def iin_check_digit(first11: str) -> int | None:
    """Check digit of a Kazakh ИИН/БИН (two weight passes mod 11; None when no digit is valid)."""
    values = [int(c) for c in first11]
    check = sum(w * v for w, v in zip(IIN_WEIGHTS_1, values, strict=True)) % 11
    if check == 10:
        check = sum(w * v for w, v in zip(IIN_WEIGHTS_2, values, strict=True)) % 11
    return None if check == 10 else check


def iin_valid(text: str) -> bool:
    digits = _digits(text)
    return len(digits) == 12 and iin_check_digit(digits[:11]) == int(digits[11])


def snils_check(first9: str) -> int:
    total = sum(int(c) * (9 - i) for i, c in enumerate(first9))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    total %= 101
    return 0 if total == 100 else total


def snils_valid(text: str) -> bool:
    """Russian СНИЛС: 11 digits, the last two a weighted-sum check (numbers up to 001-001-998 unchecked)."""
    digits = _digits(text)
    if len(digits) != 11:
        return False
    if int(digits[:9]) <= 1001998:
        return True
    return snils_check(digits[:9]) == int(digits[9:])


def _inn_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(c) * w for c, w in zip(digits, weights, strict=False)) % 11 % 10


INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
INN12_1 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
INN12_2 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def inn_valid(text: str) -> bool:
    """Russian ИНН of an organisation (10 digits) or a person (12 digits)."""
    digits = _digits(text)
    if len(digits) == 10:
        return _inn_digit(digits[:9], INN10) == int(digits[9])
    if len(digits) == 12:
        return _inn_digit(digits[:10], INN12_1) == int(digits[10]) and _inn_digit(digits[:11], INN12_2) == int(
            digits[11]
        )
    return False


def oms_check_digit(first15: str) -> int:
    """Check digit of a 16-digit Russian OMS policy number (Luhn-style, from the federal standard)."""
    odd = "".join(first15[i] for i in range(14, -1, -2))
    even = "".join(first15[i] for i in range(13, -1, -2))
    number = str(int(odd) * 2) + even
    total = sum(int(c) for c in number)
    return (10 - total % 10) % 10


def oms_valid(text: str) -> bool:
    digits = _digits(text)
    return len(digits) == 16 and oms_check_digit(digits[:15]) == int(digits[15])


def cn_resident_check(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a Chinese resident ID."""
    return CN_CHECK[sum(int(c) * w for c, w in zip(first17, CN_WEIGHTS, strict=True)) % 11]


def cn_resident_valid(text: str) -> bool:
    text = text.strip().upper()
    return len(text) == 18 and text[:17].isdigit() and cn_resident_check(text[:17]) == text[17]


# --- valid fakes ----------------------------------------------------------------------------------


def fake_iin(rng: random.Random) -> str:
    while True:
        year, month, day = rng.randint(40, 99), rng.randint(1, 12), rng.randint(1, 28)
        first = f"{year:02d}{month:02d}{day:02d}{rng.choice('34')}{rng.randint(0, 9999):04d}"
        check = iin_check_digit(first)
        if check is not None:
            return first + str(check)


def fake_snils(rng: random.Random) -> str:
    first = f"{rng.randint(2000000, 999999999):09d}"
    check = snils_check(first)
    return f"{first[:3]}-{first[3:6]}-{first[6:9]} {check:02d}"


def fake_inn(rng: random.Random) -> str:
    first = f"{rng.randint(0, 9999999999):010d}"
    d11 = _inn_digit(first, INN12_1)
    d12 = _inn_digit(first + str(d11), INN12_2)
    return f"{first}{d11}{d12}"


def fake_oms(rng: random.Random) -> str:
    first = f"{rng.randint(0, 10**15 - 1):015d}"
    return first + str(oms_check_digit(first))


def fake_cn_resident(rng: random.Random) -> str:
    first = f"{rng.randint(110000, 659999)}{rng.randint(1940, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first += f"{rng.randint(0, 999):03d}"
    return first + cn_resident_check(first)

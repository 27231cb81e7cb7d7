"""The Cognito bridge's confirmation codes: six digits, only a keyed hash kept, 24 hours, few guesses."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from cohort.local.cognito_bridge import (
    CODE_TTL_SECONDS,
    MAX_FAILED_ATTEMPTS,
    CodeCheck,
    ConfirmationCodes,
    confirmation_email,
    email_file_name,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_code_is_six_digits_and_is_not_kept_in_clear(clock: Clock) -> None:
    codes = ConfirmationCodes(clock=clock)

    code, sent = codes.issue("user-1")

    assert len(code) == 6
    assert code.isdigit()
    assert sent == 1
    assert code not in repr(vars(codes))
    assert codes.check("user-1", code) is CodeCheck.MATCH


def test_a_code_is_good_for_24_hours(clock: Clock) -> None:
    codes = ConfirmationCodes(clock=clock)
    code, _ = codes.issue("user-1")

    clock.now += CODE_TTL_SECONDS - 1
    assert codes.check("user-1", code) is CodeCheck.MATCH
    clock.now += 1
    assert codes.check("user-1", code) is CodeCheck.EXPIRED


def test_a_new_code_replaces_the_old_and_a_used_one_is_gone(clock: Clock) -> None:
    codes = ConfirmationCodes(clock=clock)
    first, _ = codes.issue("user-1")
    second, sent = codes.issue("user-1")

    assert sent == 2
    if first != second:  # one chance in a million that they are the same
        assert codes.check("user-1", first) is CodeCheck.MISMATCH
    assert codes.check("user-1", second) is CodeCheck.MATCH
    codes.discard("user-1")
    assert codes.check("user-1", second) is CodeCheck.EXPIRED


def test_a_code_guessed_at_too_often_is_void(clock: Clock) -> None:
    codes = ConfirmationCodes(clock=clock)
    code, _ = codes.issue("user-1")
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    verdicts = [codes.check("user-1", wrong) for _ in range(MAX_FAILED_ATTEMPTS)]

    assert verdicts == [CodeCheck.MISMATCH] * MAX_FAILED_ATTEMPTS
    assert codes.check("user-1", code) is CodeCheck.EXPIRED  # only a new code confirms now


def test_a_user_without_a_code_has_none_to_match(clock: Clock) -> None:
    assert ConfirmationCodes(clock=clock).check("stranger", "123456") is CodeCheck.EXPIRED


def test_the_email_says_the_code_as_cognito_does() -> None:
    message = BytesParser(policy=policy.default).parsebytes(confirmation_email("ada@example.org", "042917"))

    assert message["To"] == "ada@example.org"
    assert message["Subject"] == "Your verification code"
    assert message.get_content().strip() == "Your confirmation code is 042917"


def test_a_recipient_cannot_add_headers() -> None:
    with pytest.raises(ValueError, match=r"linefeed|carriage"):
        confirmation_email("ada@example.org\nBcc: eve@example.org", "042917")


def test_the_file_name_is_the_sub_or_its_hash() -> None:
    assert email_file_name("6b2ecf52-4f3a-4e89-8b96-22d1b97eb89d", 2) == (
        "cognito-confirmation-6b2ecf52-4f3a-4e89-8b96-22d1b97eb89d-2"
    )
    unsafe = email_file_name("../../etc/passwd", 1)
    assert unsafe.startswith("cognito-confirmation-")
    assert "/" not in unsafe
    assert "." not in unsafe

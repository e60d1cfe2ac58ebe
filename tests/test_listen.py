"""`mailhooks listen`'s check of a Standard Webhooks signature, as a pure function, against
the signatures the web channel makes and those of the `standardwebhooks` library; and how
a delivery is shown to a person and to a script."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from mailhooks.channels.signing import keyed, sign, signing_key
from mailhooks.cli.listen import lines, record
from mailhooks.listen import TOLERANCE, Answer, Delivery, Verdict, verify

SECRET = "a-signing-secret-of-some-length"
KEY = keyed(signing_key(SECRET))
OTHER = keyed(signing_key("another-secret-of-some-length"))
NOW = 1_800_000_000
BODY = b'{"event": "delivered", "email": "a@example.com", "message_id": "m1"}'


def check(signature: str | None, *, key: object = KEY, message_id: str | None = "msg_1",
          timestamp: str | None = str(NOW), body: bytes = BODY, now: float = NOW) -> Verdict:
    return verify(key, message_id, timestamp, signature, body, now)  # type: ignore[arg-type]


def test_the_web_channels_signature_verifies() -> None:
    verdict = check(sign([KEY], "msg_1", NOW, BODY))
    assert verdict == Verdict("valid", "signature verified", 1)
    assert verdict.ok


def test_the_standardwebhooks_librarys_signature_verifies() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
    signature = Webhook(secret).sign("msg_1", datetime.fromtimestamp(NOW, UTC), BODY.decode())
    assert check(signature, key=keyed(signing_key(secret))).kind == "valid"


def test_one_matching_signature_of_several_is_enough() -> None:
    signature = sign([OTHER, KEY], "msg_1", NOW, BODY)
    assert check(signature) == Verdict("valid", "signature verified (1 of 2 v1 signatures matched)", 2)


def test_a_wrong_secret_and_a_changed_body_are_the_same_mismatch() -> None:
    wrong = check(sign([OTHER], "msg_1", NOW, BODY))
    changed = check(sign([KEY], "msg_1", NOW, BODY), body=BODY.replace(b"m1", b"m2"))
    assert wrong == changed
    assert wrong.kind == "mismatch"
    assert wrong.text == ("the signature does not match: a wrong secret, "
                          "or the body changed on the way")


def test_a_mismatch_says_how_many_signatures_were_checked() -> None:
    signature = sign([OTHER, OTHER, OTHER], "msg_1", NOW, BODY) + " v1a,ignored"
    verdict = check(signature)
    assert verdict.kind == "mismatch"
    assert verdict.text.endswith("(3 v1 signatures checked)")
    assert verdict.checked == 3


def test_a_signature_of_another_id_or_timestamp_does_not_match() -> None:
    assert check(sign([KEY], "msg_2", NOW, BODY)).kind == "mismatch"
    assert check(sign([KEY], "msg_1", NOW - 1, BODY)).kind == "mismatch"


@pytest.mark.parametrize(("sent", "words"), [
    (NOW - TOLERANCE - 60, "timestamp is too old: sent 360 s before it arrived"),
    (NOW + TOLERANCE + 60, "timestamp is in the future: 360 s ahead of this clock"),
])
def test_a_timestamp_out_of_the_tolerance_is_refused(sent: int, words: str) -> None:
    verdict = check(sign([KEY], "msg_1", sent, BODY), timestamp=str(sent))
    assert verdict.kind == "timestamp"
    assert words in verdict.text
    assert "tolerance is 300 s" in verdict.text


def test_a_timestamp_within_the_tolerance_is_fine() -> None:
    for sent in (NOW - TOLERANCE, NOW + TOLERANCE):
        assert check(sign([KEY], "msg_1", sent, BODY), timestamp=str(sent)).kind == "valid"


def test_a_mismatch_is_reported_before_an_old_timestamp() -> None:
    old = NOW - 3600
    assert check(sign([OTHER], "msg_1", old, BODY), timestamp=str(old)).kind == "mismatch"


def test_no_secret_checks_nothing() -> None:
    assert check(None, key=None) == Verdict("not_checked", "signature not checked (no --secret)")
    assert check("v1,anything", key=None).kind == "not_checked"


def test_no_signature() -> None:
    assert check(None) == Verdict("no_signature", "not signed: no webhook-signature header")
    assert check("").kind == "no_signature"


@pytest.mark.parametrize(("headers", "words"), [
    ({"message_id": None}, "no webhook-id"),
    ({"message_id": None, "timestamp": None}, "no webhook-id and no webhook-timestamp"),
    ({"timestamp": "1.5e9"}, "webhook-timestamp '1.5e9' is not unix seconds"),
    ({"timestamp": "-5"}, "is not unix seconds"),
    ({"timestamp": "１２３"}, "is not unix seconds"),  # Unicode digits are no unix seconds
])
def test_malformed_headers(headers: dict[str, str | None], words: str) -> None:
    verdict = check("v1,abc", **headers)  # type: ignore[arg-type]
    assert verdict.kind == "malformed"
    assert words in verdict.text


def test_a_signature_header_without_v1() -> None:
    verdict = check("v2,abc v1a,def")
    assert verdict == Verdict("malformed", "malformed headers: webhook-signature has no v1,… signature")


def delivery(body: bytes, content_type: str = "application/json", **extra: str) -> Delivery:
    headers = (("content-type", content_type), ("host", "127.0.0.1"),
               *((name, value) for name, value in extra.items()))
    return Delivery(1, NOW, "POST", "/hook", "", headers, body, Verdict("valid", "signature verified", 1),
                    Answer(429, 7))


def test_a_delivery_for_a_person() -> None:
    signed = sign([KEY], "msg_1", NOW, BODY)
    shown = lines(delivery(BODY, **{"webhook-id": "msg_1", "webhook-timestamp": str(NOW),
                                    "webhook-signature": signed}))
    assert shown[0].startswith(datetime.fromtimestamp(NOW).strftime("%H:%M:%S") + " POST /hook | id msg_1")
    assert shown[0].endswith(" | signature verified")
    assert "  content-type: application/json" in shown
    assert any(line.startswith(f"  webhook-timestamp: {NOW} (") for line in shown)
    signature = next(line for line in shown if line.startswith("  webhook-signature:"))
    assert signature == f"  webhook-signature: {signed[:15]}… (1 signature)"
    assert "  other headers: host" in shown
    assert '    "event": "delivered",' in shown
    assert shown[-2:] == ["  answered 429, Retry-After: 7", ""]


def test_a_form_is_shown_as_fields_and_text_as_text() -> None:
    assert "  a = 1" in lines(delivery(b"a=1&b=", "application/x-www-form-urlencoded"))
    assert "  b = " in lines(delivery(b"a=1&b=", "application/x-www-form-urlencoded"))
    assert "  plain words" in lines(delivery(b"plain words", "text/plain"))
    assert "  (no body)" in lines(delivery(b""))


def test_a_delivery_for_a_script() -> None:
    made = record(delivery(BODY, **{"webhook-id": "msg_1", "webhook-timestamp": str(NOW)}))
    assert json.loads(json.dumps(made)) == made
    assert made["webhook_id"] == "msg_1"
    assert made["webhook_timestamp"] == NOW
    assert made["signature"] == {"verdict": "valid", "text": "signature verified", "checked": 1}
    assert made["body_format"] == "json"
    assert made["body"] == json.loads(BODY)
    assert made["answered"] == 429
    assert made["headers"]["host"] == "127.0.0.1"
    form = record(delivery(b"a=1&b=2", "application/x-www-form-urlencoded"))
    assert (form["body_format"], form["body"]) == ("form", {"a": "1", "b": "2"})

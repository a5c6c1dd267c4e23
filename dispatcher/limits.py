"""What each provider takes: the one table of input limits checked at enqueue.

The seeds win for wire limits; where a seed gives none, the limit is our choice and says so.
Keyed by (provider, kind); kinds not listed (voice, blaster, email) have their own rules in
their codecs. A codec's ``check`` runs first; this table adds what no codec checks.

===============  ===========================================  ============================
provider, kind   text (as the handset shows it)                signature
===============  ===========================================  ============================
cloudaten sms    ≤ 10 segments with 【signature】 (README's     ≤ 20 characters (our choice:
                 ten-part rule; seed 000 gives no length)       seed 000 gives none);
                                                               required for +86 (seed 000)
ycloud sms       ≤ 10 segments (seed 001 gives no length)      none: no such field (codec)
cloudsms sms     ≤ 10 segments with the signature as placed    ≤ 64 bytes (seed 002 LMAX)
                 (seed 002 Appendix); ``SMS_CONTENT`` ≤ 1,530
                 bytes by its counting rule (seed 002)
smsclouds sms,   the seed's flags: ≤ 306 GSM or 192 other      none: no such field (codec)
smsclic          characters (seed 004; checked by the codec)
===============  ===========================================  ============================

Seed 000 §2.1, ``signature``: "This parameter is required for Chinese mainland SMS. You must
specify an approved signature". A mainland number (+86) in a Cloud Aten SMS campaign without
a signature is recorded ``invalid`` (SIGNATURE_REQUIRED) at enqueue and never sent; when that
leaves nothing to send, the campaign is refused naming ``signature``. The same goes for a
personalised text too long for one recipient (TEXT_TOO_LONG) and ``text``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.model import Campaign, CampaignError
from dispatcher.providers.base import Codec
from dispatcher.render import has_tokens, render
from dispatcher.segments import MAX_SEGMENTS, cloudsms_bytes

TEXT_TOO_LONG = "TEXT_TOO_LONG"
SIGNATURE_REQUIRED = "SIGNATURE_REQUIRED"
#: The most characters of each encoding in MAX_SEGMENTS parts, for the error message.
_MOST = "1530 GSM 7-bit, 1340 Latin-1 or 670 UCS-2 characters"
#: Distinct rendered texts remembered: enough for names, bounded for unique codes.
_CACHED_TEXTS = 10_000


@dataclass(frozen=True, slots=True)
class Limits:
    max_segments: int = MAX_SEGMENTS  # of the text as sent, signature included
    content_bytes: int | None = None  # CloudSMS ``SMS_CONTENT``, by its counting rule
    signature_chars: int | None = None
    signature_bytes: int | None = None  # UTF-8, as the JSON body carries it
    signature_for: tuple[str, ...] = ()  # E.164 prefixes whose messages need a signature
    signature_where: str = ""  # those numbers, in words, for the error


LIMITS: dict[tuple[str, str], Limits] = {
    ("cloudaten", "sms"): Limits(
        signature_chars=20, signature_for=("+86",), signature_where="mainland China (+86)"
    ),
    ("ycloud", "sms"): Limits(),
    ("cloudsms", "sms"): Limits(content_bytes=1530, signature_bytes=64),
    ("smsclouds", "sms"): Limits(),
    ("smsclouds", "smsclic"): Limits(),
}


class Checker:
    """One campaign's limits: its text and signature at once, then each recipient's
    rendered text and number while intake reads the list."""

    def __init__(self, campaign: Campaign, codec: Codec, options: Mapping[str, Any]) -> None:
        self.campaign = campaign
        self.codec = codec
        self.options = options
        self.limits = LIMITS.get((campaign.provider, campaign.kind))
        self.personal = has_tokens(campaign.text)
        self._texts: dict[str, str | None] = {}  # rendered text → why it is refused
        self.refused: dict[str, int] = {}  # error code → recipients refused for it

    def check_campaign(self) -> None:
        """Refuse the signature or the text itself (tokens left empty), naming the field."""
        lim, signature = self.limits, self.campaign.signature
        if lim is None:
            return
        name = self.campaign.provider
        if signature is not None:
            if lim.signature_chars is not None and len(signature) > lim.signature_chars:
                most = lim.signature_chars
                raise CampaignError("signature", f"longer than {name}'s {most} characters")
            size = len(signature.encode())
            if lim.signature_bytes is not None and size > lim.signature_bytes:
                most = lim.signature_bytes
                raise CampaignError("signature", f"{size} bytes; {name} takes at most {most}")
        problem = self.text_problem(render(self.campaign.text, None))
        if problem is not None:
            raise CampaignError("text", problem)

    def text_problem(self, text: str) -> str | None:
        """Why ``text`` (rendered) breaks the provider's length rules, or None."""
        lim = self.limits
        if lim is None:
            return None
        signature = self.campaign.signature
        parts = self.codec.segments(text, signature, self.options)
        if parts > lim.max_segments:
            what = " with the signature" if signature else ""
            return (
                f"{parts} segments{what}; {self.campaign.provider} sends at most "
                f"{lim.max_segments} ({_MOST})"
            )
        if lim.content_bytes is not None:
            size = cloudsms_bytes(text)
            if size > lim.content_bytes:
                return (
                    f"{size} bytes as CloudSMS counts them (1 a character in an ASCII-only "
                    f"text, else 2); SMS_CONTENT takes at most {lim.content_bytes}"
                )
        return None

    @property
    def screen(self) -> tuple[tuple[str, ...], bool]:
        """What :meth:`recipient` can refuse for: the E.164 prefixes it refuses, and whether
        it reads fields. Intake calls it only for those recipients: most lists have none."""
        lim = self.limits
        if lim is None:
            return (), False
        return (lim.signature_for if self.campaign.signature is None else ()), self.personal

    def recipient(self, e164: str, fields: Mapping[str, str] | None) -> tuple[str, str] | None:
        """``(error code, reason)`` when this recipient cannot be sent; None when it can."""
        lim = self.limits
        if lim is None:
            return None
        if self.campaign.signature is None and e164.startswith(lim.signature_for):
            why = f"{self.campaign.provider} requires a signature for {lim.signature_where} numbers"
            return self._refuse(SIGNATURE_REQUIRED, why)
        if self.personal and fields:
            text = render(self.campaign.text, fields)
            problem = self._texts[text] if text in self._texts else self.text_problem(text)
            if len(self._texts) < _CACHED_TEXTS:
                self._texts[text] = problem
            if problem is not None:
                return self._refuse(TEXT_TOO_LONG, f"text with this recipient's fields: {problem}")
        return None

    def _refuse(self, code: str, why: str) -> tuple[str, str]:
        self.refused[code] = self.refused.get(code, 0) + 1
        return code, why

    def check_sendable(self, valid: int) -> None:
        """Nothing left to send because of the campaign's own field: refuse it, naming it."""
        if valid or not self.refused:
            return
        if SIGNATURE_REQUIRED in self.refused:
            n = self.refused[SIGNATURE_REQUIRED]
            where = self.limits.signature_where if self.limits else ""
            raise CampaignError(
                "signature",
                f"{self.campaign.provider} requires one for {where} numbers, and all "
                f"{n} valid recipient(s) are",
            )
        n = self.refused[TEXT_TOO_LONG]
        raise CampaignError("text", f"too long for all {n} recipient(s) with their fields")

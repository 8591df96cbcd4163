"""Language tags: what a container says (ISO 639-2, e.g. ``eng``), as HLS
wants it (BCP 47, RFC 5646: the shortest ISO 639 code, ``en``)."""

from __future__ import annotations

import re

UNDETERMINED = "und"

#: ISO 639-2 codes (bibliographic and terminology) of languages that have an
#: ISO 639-1 code, which BCP 47 prefers.
_TWO_LETTER = {
    "alb": "sq", "sqi": "sq", "ara": "ar", "arm": "hy", "hye": "hy",
    "baq": "eu", "eus": "eu", "ben": "bn", "bul": "bg", "cat": "ca",
    "chi": "zh", "zho": "zh", "cze": "cs", "ces": "cs", "dan": "da",
    "dut": "nl", "nld": "nl", "eng": "en", "est": "et", "fin": "fi",
    "fre": "fr", "fra": "fr", "geo": "ka", "kat": "ka", "ger": "de",
    "deu": "de", "gre": "el", "ell": "el", "heb": "he", "hin": "hi",
    "hrv": "hr", "hun": "hu", "ice": "is", "isl": "is", "ind": "id",
    "gle": "ga", "ita": "it", "jpn": "ja", "kor": "ko", "lav": "lv",
    "lit": "lt", "mac": "mk", "mkd": "mk", "may": "ms", "msa": "ms",
    "nor": "no", "nob": "nb", "nno": "nn", "per": "fa", "fas": "fa",
    "pol": "pl", "por": "pt", "rum": "ro", "ron": "ro", "rus": "ru",
    "slo": "sk", "slk": "sk", "slv": "sl", "spa": "es", "srp": "sr",
    "swa": "sw", "swe": "sv", "tam": "ta", "tel": "te", "tha": "th",
    "tur": "tr", "ukr": "uk", "urd": "ur", "vie": "vi", "wel": "cy",
    "cym": "cy",
}  # fmt: skip
_TAG = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*")


def bcp47(tag: object) -> str:
    """A container's language tag as a BCP 47 tag; ``und`` when absent or
    not a language tag."""
    if not isinstance(tag, str):
        return UNDETERMINED
    text = tag.strip().replace("_", "-").lower()
    if not _TAG.fullmatch(text):
        return UNDETERMINED
    primary, _, rest = text.partition("-")
    primary = _TWO_LETTER.get(primary, primary)
    return f"{primary}-{rest}" if rest else primary

"""Language tags: what a container says (ISO 639-2, e.g. ``eng``) or a user
sends, as HLS wants it (BCP 47, RFC 5646: the shortest ISO 639 code, ``en``),
and the name a player's menu shows for it."""

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


#: A BCP 47 language tag as a caption track takes it (RFC 5646 2.1: language,
#: then optional script, region and variants; no private-use or grandfathered
#: tags), matched case-insensitively.
_CAPTION_TAG = re.compile(
    r"(?P<language>[a-z]{2,3})"
    r"(?:-(?P<script>[a-z]{4}))?"
    r"(?:-(?P<region>[a-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*",
    re.IGNORECASE,
)


def caption_language(tag: str) -> str | None:
    """``tag`` in BCP 47's canonical case (``en``, ``zh-Hant-TW``, ``es-419``),
    with ISO 639-2 codes shortened as ``bcp47`` does; None when it is not a
    language tag or is ``und`` (a caption track is in a known language)."""
    if not _CAPTION_TAG.fullmatch(tag):
        return None
    primary, *subtags = tag.split("-")
    language = _TWO_LETTER.get(primary.lower(), primary.lower())
    if language == UNDETERMINED:
        return None
    # RFC 5646 2.1.1: a script is title case, a region upper case; with the
    # pattern above, only a script has four letters and a region two.
    return "-".join(
        [
            language,
            *(
                sub.title()
                if len(sub) == 4 and sub.isalpha()
                else sub.upper()
                if len(sub) == 2
                else sub.lower()
                for sub in subtags
            ),
        ]
    )


#: What a player's menu shows for a track, by its language.
_LANGUAGE_NAMES = {
    "ar": "العربية", "de": "Deutsch", "en": "English", "es": "Español",
    "fr": "Français", "hi": "हिन्दी", "it": "Italiano", "ja": "日本語",
    "ko": "한국어", "nl": "Nederlands", "pl": "Polski", "pt": "Português",
    "ru": "Русский", "sv": "Svenska", "tr": "Türkçe", "zh": "中文",
}  # fmt: skip


def language_name(tag: str) -> str:
    """The language's own name where known (Apple's spec asks for a NAME in
    the rendition's language), else the tag."""
    return _LANGUAGE_NAMES.get(tag.split("-", 1)[0], tag)

"""Make generated HTML self-contained: drop or neutralise every external URL."""

from __future__ import annotations

import re

_SCHEME = re.compile(r"https?://", re.I)
_LINK_TAG = re.compile(r"<link\b(?![^>]*\bhref\s*=\s*[\"']?data:)[^>]*>", re.I)
_SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc\s*=[^>]*>.*?</script\s*>", re.I | re.S)
_ANCHOR = re.compile(r"<a\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>(.*?)</a\s*>", re.I | re.S)
_URL_ATTR = re.compile(
    r"\s(?:src|href|srcset|action|poster|background)\s*=\s*([\"'])\s*(?:https?:)?//.*?\1",
    re.I | re.S,
)
_CSS_IMPORT = re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//[^;]*;", re.I)
_CSS_URL = re.compile(r"url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.I)
_ONLOAD = re.compile(r"\sonload\s*=\s*([\"']).*?\1", re.I)


def make_offline(page: str) -> str:
    """Remove external ``<link>``/``<script src>`` tags, unwrap external anchors,
    drop external ``src``/``href`` attributes and CSS ``url()``/``@import``, and
    strip the scheme of any URL left in text, so the page references nothing
    outside itself. ``data:`` URIs are kept. Also drops ``onload`` handlers (the
    quantstats template calls an undefined ``save()``)."""
    page = _LINK_TAG.sub("", page)
    page = _SCRIPT_SRC.sub("", page)
    page = _ANCHOR.sub(r"\1", page)
    page = _URL_ATTR.sub("", page)
    page = _CSS_IMPORT.sub("", page)
    page = _CSS_URL.sub("none", page)
    page = _ONLOAD.sub("", page)
    return _SCHEME.sub("", page)


def external_urls(page: str) -> list[str]:
    """``http(s)://`` occurrences left in ``page`` (empty when self-contained)."""
    return _SCHEME.findall(page)

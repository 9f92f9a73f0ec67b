"""The one hardened XML parser every vendor uses."""

from __future__ import annotations

import threading

from lxml import etree

from .errors import ParseError

_local = threading.local()
# Tags (each `<`, opening or closing) one reply may hold. libxml2 keeps about 130 bytes a
# node: 16 MiB of `<a/>` is 4 million elements and took 550 MiB to hold. A 1,000-session
# Glance page has some 42,000 tags; a body of fewer bytes than this cannot exceed it, so
# only bigger ones are counted (one C scan, 6 ms for 16 MiB).
MAX_TAGS = 1_000_000


def _parser() -> etree.XMLParser:
    """This thread's parser. An lxml parser parses for one thread at a time (it holds a
    lock meanwhile), so one shared parser would make the event loop wait, lock held, for
    a big reply being parsed in a worker thread."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            dtd_validation=False,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
    return parser


def parse_xml(body: bytes, max_bytes: int = 16 * 1024 * 1024) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, bounded size."""
    if len(body) > max_bytes:
        raise ParseError(f"XML body of {len(body)} bytes exceeds the {max_bytes}-byte cap")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ParseError("XML with a DTD or entity declarations is refused")
    if len(body) > MAX_TAGS and (tags := body.count(b"<")) > MAX_TAGS:
        raise ParseError(
            f"XML of {tags:,} tags exceeds the cap of {MAX_TAGS:,}: no vendor reply holds "
            "that many elements, and holding them would take hundreds of megabytes"
        )
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise ParseError(f"malformed XML: {exc.msg}") from None
    if root is None:
        raise ParseError("empty XML document")
    # The byte scan above spares a parse of most such bodies; in UTF-16 or UTF-32 it
    # sees nothing, so what the parser found decides.
    if root.getroottree().docinfo.internalDTD is not None:
        raise ParseError("XML with a DTD or entity declarations is refused")
    return root

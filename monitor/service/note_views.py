"""Views that serve a log's checkpoint as a plain signed note: witnesses, distributors and peer
tlog-monitors (`kind = "witness"` / `"peer"` in `[[log.view]]`).

Such an endpoint answers GET with one signed checkpoint (the log's signature, usually followed
by witness cosignatures). Nothing it says is trusted: the engine verifies the note against the
log's key and runs it through the same consistency checks as the log's own checkpoints, so a
witness or peer that saw another tree yields a `split_view` carrying both notes.

    GET <url> --(at most MAX_NOTE_BYTES)--> note text --origin--> tree id --> engine.Head
"""

from __future__ import annotations

import aiohttp

from monitor.config.settings import LogConfig, LogType
from monitor.core.errors import ParseError
from monitor.core.note import MAX_NOTE_BYTES, parse_checkpoint, parse_signed_note
from monitor.logs.http import HttpLogClient, HttpPolicy, LogResponseError, RequestBudget, safe_url
from monitor.logs.rekor_v1.client import is_tree_id
from monitor.service.engine import Head
from monitor.service.wiring import TILES_TREE

REKOR_V1_ORIGIN_SEPARATOR = " - "
"""Rekor v1 origins read "<key name> - <treeID>"."""


def tree_id_of(log_type: LogType, note: str) -> str:
    """The tree a served checkpoint claims to belong to: a Rekor v1 shard's treeID (from its
    origin line), or the single tree of a tiled or CT log. Raises `ParseError` (a `NoteFormatError`)
    when the note or its origin line does not have the expected shape."""
    if log_type is not LogType.REKOR_V1:
        # A tiled or CT log has one tree (a peer serves a CT log's STH as its checkpoint note).
        return TILES_TREE
    origin = parse_checkpoint(parse_signed_note(note).text).origin
    _, sep, tree_id = origin.rpartition(REKOR_V1_ORIGIN_SEPARATOR)
    if not sep or not is_tree_id(tree_id):
        raise LogResponseError(
            "checkpoint: expected a Rekor v1 origin '<name> - <treeID>' (treeID in ASCII "
            f"digits, at most 2^63 - 1), got {origin[:120]!r}"
        )
    return tree_id


class NoteSource(HttpLogClient):
    """A witness, distributor or peer endpoint as the engine sees it: one checkpoint, no API.

    It serves no proofs: the engine always asks the log's own endpoint for those.
    """

    def __init__(
        self,
        log: LogConfig,
        url: str,
        session: aiohttp.ClientSession,
        policy: HttpPolicy,
        budget: RequestBudget | None,
    ) -> None:
        super().__init__(session, url, policy, budget)
        self.log_type = log.type
        self.url = url

    async def heads(self) -> list[Head]:
        """The one checkpoint the endpoint serves."""
        text = await self.get_text(
            self.url,
            encoding="UTF-8",
            expected="a signed note (UTF-8 text)",
            max_bytes=MAX_NOTE_BYTES,
        )
        try:
            tree_id = tree_id_of(self.log_type, text)
        except ParseError as e:
            raise LogResponseError(f"GET {safe_url(self.url)}: {e}") from e
        return [Head(tree_id=tree_id, note=text)]

    async def consistency_proof(self, tree_id: str, size1: int, size2: int) -> list[bytes]:
        """Never called: proofs come from the primary endpoint."""
        raise LogResponseError(f"{safe_url(self.url)}: a checkpoint endpoint serves no proofs")

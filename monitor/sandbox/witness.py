"""A witness for the sandbox logs: an Ed25519 cosignature/v1 key that cosigns the checkpoints the
sandbox serves and publishes them at a distributor-like read path, with an admin switch to make
it see a forked tree or stop cosigning.

Routes (added to the sandbox's application by `register`)::

    GET  /witness/<log>/checkpoint   <log> = v1 | tiles: the checkpoint the witness sees, with its
                                     cosignature (text/plain)
    POST /admin/witness              {"log": "v1"|"tiles", "sees": <view name> | null,
                                      "cosign": true|false} -> the witness's settings

The key is `<state>/witness.key` (created on first start); its vkey, for `[[log.witness]]`, is
`<state>/witness.vkey`, key name `sandbox.witness.local`. By default the witness sees the main
endpoints and cosigns. `sees` points it at a named view (make that view fork with
`/admin/misbehave` first: the witness then vouches for the fork); `cosign: false` serves the
checkpoint without a cosignature (a witness that stopped signing).

Unlike a real witness, this one checks nothing before it signs: it is a drill tool.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.core.note import CosignatureSigner, cosign_note, parse_signed_note
from monitor.sandbox.core import LogName, SandboxCore, SandboxError

WITNESS_NAME = "sandbox.witness.local"
"""The sandbox witness's key name."""


def witness_vkey(state_dir: Path | str) -> str:
    """The sandbox witness's vkey (after the sandbox has started once on `state_dir`)."""
    return (Path(state_dir) / "witness.vkey").read_text(encoding="ascii").strip()


@dataclass
class _Setting:
    sees: str | None = None
    cosign: bool = True


class SandboxWitness:
    """The witness's key and per-log settings."""

    def __init__(self, core: SandboxCore) -> None:
        self.core = core
        key = core.load_ed25519_key(core.state_dir / "witness.key")
        self.signer = CosignatureSigner(WITNESS_NAME, key)
        (core.state_dir / "witness.vkey").write_text(self.signer.verifier().vkey + "\n")
        self._lock = threading.Lock()
        self._settings = {name: _Setting() for name in LogName}

    def configure(self, body: dict[str, Any]) -> dict[str, object]:
        """Apply POST /admin/witness."""
        try:
            name = LogName(str(body.get("log", "")))
        except ValueError as e:
            raise SandboxError(f"witness: 'log' must be 'v1' or 'tiles': {e}") from e
        with self._lock:
            setting = self._settings[name]
            if "sees" in body:
                sees = body["sees"]
                if sees is not None and (not isinstance(sees, str) or not sees or "/" in sees):
                    raise SandboxError(f"witness: 'sees' must be a view name or null, got {sees!r}")
                setting.sees = sees
            if "cosign" in body:
                if not isinstance(body["cosign"], bool):
                    raise SandboxError("witness: 'cosign' must be true or false")
                setting.cosign = body["cosign"]
            return {"log": name.value, "sees": setting.sees, "cosign": setting.cosign}

    def checkpoint(self, name: LogName) -> tuple[int, str]:
        """(HTTP status, body) of GET /witness/<log>/checkpoint."""
        with self._lock:
            setting = _Setting(self._settings[name].sees, self._settings[name].cosign)
        if name is LogName.CT:
            # An RFC 6962 log serves STHs, not notes: there is nothing for a witness to cosign.
            return 404, "witness: the sandbox witness does not witness the CT log\n"
        if name is LogName.TILES:
            reply = self.core.tiles_checkpoint(setting.sees)
            text = reply.body.decode("utf-8")
        else:
            reply = self.core.v1_log_info(setting.sees)
            text = str(json.loads(reply.body)["signedTreeHead"]) if reply.status == 200 else ""
        if reply.status != 200:
            return reply.status, "witness: the log did not serve a checkpoint\n"
        if not setting.cosign:
            return 200, text
        return 200, cosign_note(parse_signed_note(text), [self.signer], int(time.time())).to_text()


_WITNESS_KEY: web.AppKey[SandboxWitness] = web.AppKey("sandbox_witness", SandboxWitness)


async def _checkpoint(request: web.Request) -> web.StreamResponse:
    try:
        name = LogName(request.match_info["log"])
    except ValueError:
        return web.Response(status=404, text="witness: unknown log\n")
    status, body = request.app[_WITNESS_KEY].checkpoint(name)
    return web.Response(
        status=status, text=body, content_type="text/plain", headers={"Cache-Control": "no-store"}
    )


async def _admin(request: web.Request) -> web.StreamResponse:
    try:
        body = json.loads(await request.read() or b"{}")
        if not isinstance(body, dict):
            raise SandboxError("request body must be a JSON object")
        return web.json_response(request.app[_WITNESS_KEY].configure(body))
    except (ValueError, SandboxError) as e:
        return web.json_response({"error": str(e)}, status=400)


def register(app: web.Application, core: SandboxCore) -> None:
    """Add the witness's routes (and its key) to the sandbox application."""
    app[_WITNESS_KEY] = SandboxWitness(core)
    app.router.add_get("/witness/{log}/checkpoint", _checkpoint)
    app.router.add_post("/admin/witness", _admin)

"""A real, local transparency log for demos, integration tests and alert drills.

One process serves a sharded Rekor v1 REST log and a C2SP tlog-tiles log (Rekor v2 style),
both backed by real Merkle trees and signed checkpoints, with a local Fulcio-like CA for entry
certificates, and an admin API to append entries, rotate shards and misbehave on purpose (split
views, rollbacks, bad signatures, bad proofs, bad entries, errors, slowness). See README.md.

    from monitor.sandbox import Sandbox
    sb = Sandbox(tmp_path)
    url = await sb.start()
    await sb.append("tiles", 1000, {"email": "alice@example.com"})
    sb.misbehave("v1", "fork", view="mirror")
"""

from monitor.sandbox.core import AppendResult, LogName, Mode, SandboxError
from monitor.sandbox.server import Sandbox, run_sandbox

__all__ = ["AppendResult", "LogName", "Mode", "Sandbox", "SandboxError", "run_sandbox"]

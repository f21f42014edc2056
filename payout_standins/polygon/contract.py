"""The stand-in contract, compiled by solc-js from node_modules (``make install``).

The compiler's output is cached under node_modules/.cache, keyed by the source and the
compiler, so a test session compiles it once.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SOURCE = HERE / "ConditionalTokensStandIn.sol"
NAME = "ConditionalTokensStandIn"
SOLCJS = ROOT / "node_modules" / ".bin" / "solcjs"
CACHE = ROOT / "node_modules" / ".cache" / "payout-standins"


class MissingNodeTools(RuntimeError):
    """node_modules lacks anvil or solc-js."""


@dataclass(frozen=True)
class Compiled:
    runtime_code: str  # 0x-prefixed: what anvil_setCode places at an address
    selectors: dict[str, str]  # signature -> 4-byte selector (hex, no 0x)

    def selector(self, signature: str) -> str:
        return self.selectors[signature]


def _solc_input() -> dict[str, object]:
    return {
        "language": "Solidity",
        "sources": {SOURCE.name: {"content": SOURCE.read_text()}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {
                "*": {"*": ["evm.deployedBytecode.object", "evm.methodIdentifiers"]}
            },
        },
    }


@cache
def compiled() -> Compiled:
    if not SOLCJS.exists():
        raise MissingNodeTools(f"{SOLCJS} is missing: run `make install` (npm ci) first")
    request = json.dumps(_solc_input(), sort_keys=True)
    version = json.loads((ROOT / "node_modules" / "solc" / "package.json").read_text())["version"]
    key = hashlib.sha256(f"{version}\0{request}".encode()).hexdigest()[:16]
    cached = CACHE / f"{NAME}-{key}.json"
    if not cached.exists():
        done = subprocess.run(
            [str(SOLCJS), "--standard-json"],
            input=request,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        # solc-js prints a notice line about SMT solvers before the JSON
        output = json.loads(done.stdout[done.stdout.index("{") :])
        errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
        if errors:
            raise RuntimeError(f"solc: {errors[0].get('formattedMessage', errors[0])}")
        CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(output["contracts"][SOURCE.name][NAME]["evm"]))
    evm = json.loads(cached.read_text())
    return Compiled(
        runtime_code="0x" + evm["deployedBytecode"]["object"],
        selectors=dict(evm["methodIdentifiers"]),
    )

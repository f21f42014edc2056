"""A local Polygon for tests, the demo and ``make dev``: anvil (chain id 137) with the stand-in
contract at ConditionalTokens' real address, and helpers to resolve conditions on it.

anvil mines a block per transaction. Its ``finalized`` block trails the head by two epochs
(``slots_in_an_epoch`` blocks each), so a small epoch lets tests finalize blocks by mining a few.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from payout_standins.polygon.abi import call_data
from payout_standins.polygon.contract import ROOT, MissingNodeTools, compiled
from payout_standins.procs import stop_group

ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
CTF_ADDRESS = "0x4D97DCd97eC945f40cF65F87097ACe5EA0476045"
CHAIN_ID = 137
# anvil's first dev account: the oracle of the stand-in's own resolutions
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cfFFb92266"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Resolution:
    """One ``reportPayouts``: the oracle and question that make the condition id, and its
    payouts (any length above one; uint256)."""

    question_id: int
    payouts: Sequence[int]
    oracle: str = DEV_ACCOUNT


@dataclass(frozen=True)
class Resolved:
    condition_id: str  # 64 lowercase hex, no 0x
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    payouts: tuple[int, ...]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPolygon:
    """anvil in its own process group; ``stop()`` (or the context manager) ends it."""

    def __init__(
        self,
        *,
        slots_in_an_epoch: int = 1,
        port: int | None = None,
        log_path: Path | None = None,
        state_path: Path | None = None,
    ) -> None:
        """``state_path``: the chain is loaded from that file when it exists and written back
        when anvil stops (``make demo`` leaves it for ``make dev``)."""
        if not ANVIL.exists():
            raise MissingNodeTools(f"{ANVIL} is missing: run `make install` (npm ci) first")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ids = itertools.count(1)
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(ANVIL),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--chain-id", str(CHAIN_ID),
                "--slots-in-an-epoch", str(slots_in_an_epoch),
                "--gas-limit", "1000000000",
                "--silent",
                *(["--state", str(state_path)] if state_path else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self._http = httpx.Client(timeout=30.0)
        try:
            self._wait_ready()
            if state_path is None or not state_path.exists():
                self.install_contract()
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> LocalPolygon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._http.close()
        stop_group(self.proc, grace_s=5.0)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.proc.returncode} before answering")
            try:
                self.rpc("eth_chainId")
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"anvil did not answer on {self.url} within {START_TIMEOUT_S:.0f} s")

    def rpc(self, method: str, *params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)}
        answer = self._http.post(self.url, json=body).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def install_contract(self, address: str = CTF_ADDRESS) -> None:
        self.rpc("anvil_setCode", address, compiled().runtime_code)

    # -- the chain ---------------------------------------------------------------------------

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def finalized(self) -> int:
        return int(self.rpc("eth_getBlockByNumber", "finalized", False)["number"], 16)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def snapshot(self) -> str:
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        if not self.rpc("evm_revert", snapshot_id):
            raise RuntimeError(f"evm_revert({snapshot_id}) refused")

    def block_hash(self, number: int) -> str:
        return str(self.rpc("eth_getBlockByNumber", hex(number), False)["hash"])

    # -- resolutions ---------------------------------------------------------------------------

    def resolve(self, resolutions: Sequence[Resolution]) -> list[Resolved]:
        """Resolve every condition in one transaction (one block), preparing it first when it
        is new; returns each ConditionResolution the contract emitted, in log order."""
        contract = compiled()
        data = call_data(
            contract.selector("reportMany(address[],bytes32[],uint256[][])"),
            [int(r.oracle, 16) for r in resolutions],
            [r.question_id for r in resolutions],
            [list(r.payouts) for r in resolutions],
        )
        tx = self.rpc(
            "eth_sendTransaction",
            {"from": DEV_ACCOUNT, "to": CTF_ADDRESS, "data": data, "gas": hex(900_000_000)},
        )
        receipt = self.receipt(tx)
        if int(receipt["status"], 16) != 1:
            raise RuntimeError(f"reportMany reverted (tx {tx})")
        topic0 = self.resolution_topic()
        events = [log for log in receipt["logs"] if log["topics"][0] == topic0]
        return [
            Resolved(
                condition_id=log["topics"][1][2:],
                block_number=int(log["blockNumber"], 16),
                block_hash=log["blockHash"],
                tx_hash=log["transactionHash"],
                log_index=int(log["logIndex"], 16),
                payouts=tuple(r.payouts),
            )
            for log, r in zip(events, resolutions, strict=True)
        ]

    def receipt(self, tx: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The transaction's receipt, once anvil has mined it (automine is asynchronous)."""
        deadline = time.monotonic() + timeout_s
        while (receipt := self.rpc("eth_getTransactionReceipt", tx)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction {tx} was not mined within {timeout_s:.0f} s")
            time.sleep(0.02)
        return dict(receipt)

    def resolution_topic(self) -> str:
        """topic0 of ConditionResolution as the compiler computed it (the EVM's keccak)."""
        data = call_data(compiled().selector("resolutionTopic()"))
        return str(self.rpc("eth_call", {"to": CTF_ADDRESS, "data": data}, "latest"))

    def seed(self, resolutions: Sequence[tuple[str, Sequence[int]]]) -> int:
        """Resolve conditions under given ids (64 hex) in one transaction through the stand-in's
        seeding function; returns the block they landed in."""
        data = call_data(
            compiled().selector("seedResolutions(bytes32[],bytes32[],uint256[][])"),
            [int(cid, 16) for cid, _ in resolutions],
            [i + 1 for i in range(len(resolutions))],
            [list(payouts) for _, payouts in resolutions],
        )
        tx = self.rpc(
            "eth_sendTransaction",
            {"from": DEV_ACCOUNT, "to": CTF_ADDRESS, "data": data, "gas": hex(900_000_000)},
        )
        receipt = self.receipt(tx)
        if int(receipt["status"], 16) != 1:
            raise RuntimeError(f"seedResolutions reverted (tx {tx})")
        return int(receipt["blockNumber"], 16)

    def payout_numerator(self, condition_id: str, index: int) -> int:
        selector = compiled().selector("payoutNumerators(bytes32,uint256)")
        data = call_data(selector, int(condition_id, 16), index)
        return int(self.rpc("eth_call", {"to": CTF_ADDRESS, "data": data}, "latest"), 16)

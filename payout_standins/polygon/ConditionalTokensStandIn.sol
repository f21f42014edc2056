// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// A stand-in for Polymarket's ConditionalTokens on Polygon, written for this project's tests:
/// the same ConditionResolution event ABI and the same payout getters, nothing else. It is
/// placed at the real contract's address on a local node (anvil_setCode).
contract ConditionalTokensStandIn {
    event ConditionPreparation(
        bytes32 indexed conditionId,
        address indexed oracle,
        bytes32 indexed questionId,
        uint256 outcomeSlotCount
    );
    event ConditionResolution(
        bytes32 indexed conditionId,
        address indexed oracle,
        bytes32 indexed questionId,
        uint256 outcomeSlotCount,
        uint256[] payoutNumerators
    );

    mapping(bytes32 => uint256[]) public payoutNumerators;
    mapping(bytes32 => uint256) public payoutDenominator;

    function getConditionId(address oracle, bytes32 questionId, uint256 outcomeSlotCount)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(oracle, questionId, outcomeSlotCount));
    }

    /// topic0 of ConditionResolution, computed by the compiler: what tests compare the
    /// product's constant against.
    function resolutionTopic() external pure returns (bytes32) {
        return ConditionResolution.selector;
    }

    function getOutcomeSlotCount(bytes32 conditionId) external view returns (uint256) {
        return payoutNumerators[conditionId].length;
    }

    function prepareCondition(address oracle, bytes32 questionId, uint256 outcomeSlotCount)
        public
    {
        require(outcomeSlotCount > 1 && outcomeSlotCount <= 256, "invalid outcome slot count");
        bytes32 conditionId = getConditionId(oracle, questionId, outcomeSlotCount);
        require(payoutNumerators[conditionId].length == 0, "condition already prepared");
        payoutNumerators[conditionId] = new uint256[](outcomeSlotCount);
        emit ConditionPreparation(conditionId, oracle, questionId, outcomeSlotCount);
    }

    function reportPayouts(bytes32 questionId, uint256[] calldata payouts) public {
        _report(msg.sender, questionId, payouts);
    }

    /// Many resolutions in one transaction, each with its own oracle (the test chain's seeding;
    /// the real contract takes the oracle from msg.sender).
    function reportMany(address[] calldata oracles, bytes32[] calldata questionIds, uint256[][] calldata payouts)
        external
    {
        require(oracles.length == questionIds.length && oracles.length == payouts.length, "lengths");
        for (uint256 i = 0; i < oracles.length; i++) {
            bytes32 conditionId = getConditionId(oracles[i], questionIds[i], payouts[i].length);
            if (payoutNumerators[conditionId].length == 0) {
                prepareCondition(oracles[i], questionIds[i], payouts[i].length);
            }
            _report(oracles[i], questionIds[i], payouts[i]);
        }
    }

    /// The demo's seeding only (the real contract has no such function): resolve conditions
    /// under given ids, so the local chain can hold the same conditions as the subgraph
    /// simulator. The event and the getters are the real ones.
    function seedResolutions(
        bytes32[] calldata conditionIds,
        bytes32[] calldata questionIds,
        uint256[][] calldata payouts
    ) external {
        require(conditionIds.length == questionIds.length && conditionIds.length == payouts.length, "lengths");
        for (uint256 i = 0; i < conditionIds.length; i++) {
            bytes32 conditionId = conditionIds[i];
            require(payoutDenominator[conditionId] == 0, "payout denominator already set");
            uint256 den = 0;
            payoutNumerators[conditionId] = payouts[i];
            for (uint256 j = 0; j < payouts[i].length; j++) {
                den += payouts[i][j];
            }
            require(den > 0, "payout is all zeroes");
            payoutDenominator[conditionId] = den;
            emit ConditionResolution(conditionId, msg.sender, questionIds[i], payouts[i].length, payouts[i]);
        }
    }

    function _report(address oracle, bytes32 questionId, uint256[] calldata payouts) internal {
        uint256 outcomeSlotCount = payouts.length;
        require(outcomeSlotCount > 1, "there should be more than one outcome slot");
        bytes32 conditionId = getConditionId(oracle, questionId, outcomeSlotCount);
        require(payoutNumerators[conditionId].length == outcomeSlotCount, "condition not prepared or found");
        require(payoutDenominator[conditionId] == 0, "payout denominator already set");
        uint256 den = 0;
        for (uint256 i = 0; i < outcomeSlotCount; i++) {
            den += payouts[i];
            payoutNumerators[conditionId][i] = payouts[i];
        }
        require(den > 0, "payout is all zeroes");
        payoutDenominator[conditionId] = den;
        emit ConditionResolution(conditionId, oracle, questionId, outcomeSlotCount, payouts);
    }
}

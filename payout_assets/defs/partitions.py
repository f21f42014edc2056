"""Worker shards as static partitions: the partition status *is* the checkpoint.

One run per shard (no single-run backfill policy), so a failed or killed shard is re-run alone
while the others stay materialised.
"""

import dagster as dg

from payout_assets.settings import shard_count


def shard_key(shard: int) -> str:
    return f"shard-{shard:02d}"


def shard_index(partition_key: str) -> int:
    prefix, _, number = partition_key.partition("-")
    if prefix != "shard" or not number.isdigit():
        raise ValueError(f"not a shard partition key: {partition_key!r} (expected shard-NN)")
    return int(number)


def shard_partitions_def(shards: int) -> dg.StaticPartitionsDefinition:
    """``shards`` partitions ``shard-00`` …: every step that needs the shard count reads it
    from the partitions definition of the assets it runs, so it never differs from what the UI
    and the backfills show."""
    return dg.StaticPartitionsDefinition([shard_key(i) for i in range(shards)])


# The code location's shards: PAYOUT_SHARDS, read once, when the definitions load.
shard_partitions = shard_partitions_def(shard_count())

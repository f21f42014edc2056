SELECT count() FROM payout_backfill.id_input WHERE generation = {generation:String}

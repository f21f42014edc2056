-- Scratch tables and raw input of a generation, once its ids are in missing_condition_ids.
DROP TABLE IF EXISTS {db:Identifier}.{next:Identifier};

DROP TABLE IF EXISTS {db:Identifier}.{candidates:Identifier};

DROP TABLE IF EXISTS {db:Identifier}.{changed:Identifier};

DROP TABLE IF EXISTS {db:Identifier}.{unchanged:Identifier};

ALTER TABLE payout_backfill.id_input DROP PARTITION {generation:String};

SELECT uniqExact(condition_id) FROM {db:Identifier}.{candidates:Identifier}

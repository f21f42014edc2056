SELECT count() FROM {db:Identifier}.{unchanged:Identifier}

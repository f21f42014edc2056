SELECT count() FROM system.tables WHERE database = {db:String} AND name = {name:String}

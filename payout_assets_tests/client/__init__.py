"""The Goldsky client against the simulator: transient faults and the rest of its contract."""

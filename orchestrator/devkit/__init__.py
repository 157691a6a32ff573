"""Tools for developing and trying runctl: the simulator, an embedded Redis, a whole stage."""

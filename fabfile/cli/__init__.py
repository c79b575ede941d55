"""Running it: the tasks operators type, each a thin layer over the builders in `commands`."""

"""`inv` entry point: the same task collection `fab` loads from fabfile/."""

from fabfile import ns  # noqa: F401

"""The lab: slipway's own test bench (a Debian target, backup hosts, an ACME CA, all in Docker).

Project code, not part of slipway: `tasks.py` adds its tasks (`inv lab.*`) to
`inv`'s collection; `fab` never loads it and a pip install does not ship it.
`commands` builds the docker command lines, `cli` holds the tasks, and
`templates/` the images' build contexts and the lab inventory's templates.
"""

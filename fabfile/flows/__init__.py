"""The multi-step procedures: deploy, rollback, restart, password rotation, restore, certificates, backups.

A flow runs over an open Remote (or the deploy lock's run) and says what it does through a Reporter; it
builds no command line itself but asks fabfile/commands/ for them. Tasks (fabfile/cli/) parse options,
load the inventory, open the session and call one flow.
"""

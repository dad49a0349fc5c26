"""Fault tests over served emulators: the fault matrix, kill -9 recovery, rollback of every action."""

"""What to run: pure functions that build remote command lines and file contents."""

"""What is evaluated: the built-in workflow benchmark and other suites."""

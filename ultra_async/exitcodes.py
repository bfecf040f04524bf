"""Exit codes of every command, defined once; docs/cli.md lists them."""

EXIT_OK = 0
#: the command could not do its job (a write failed, a run ended with errors it cannot recover)
EXIT_FAILED = 1
#: bad input: a flag, providers.yaml, missing keys
EXIT_USAGE = 2
#: database missing or not valid JSON
EXIT_UNREADABLE = 3
#: database of another schema or missing fields
EXIT_SCHEMA = 4
#: statistics invariants broken
EXIT_INVARIANTS = 5
#: database disagrees with the journal
EXIT_MISMATCH = 6
#: journal damaged
EXIT_JOURNAL = 7
#: stopped by Ctrl-C or SIGTERM; a rerun resumes
EXIT_INTERRUPTED = 130

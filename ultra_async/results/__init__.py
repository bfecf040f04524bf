"""The one writer and what it writes: journal, statistics, database, checks, migration, export."""

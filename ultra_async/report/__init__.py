"""What people look at: tables, plots and the live progress display."""

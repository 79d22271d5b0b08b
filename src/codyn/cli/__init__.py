"""The `codyn` command line: each command parses, calls the library, prints."""

"""The operator's side of looptool: the `looptool` command line and (later) the Textual console."""
